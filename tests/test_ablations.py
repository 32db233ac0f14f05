"""Chapter 13's model check (`model_on_own_chunks`) on a real tiny run: what it records is what the environment does
(an independent replay of the recorded chunks), and its figures follow from those records."""
import numpy as np
import torch

from mac.config import make_config
from mac.evaluate import _make_env, eval_env_name
from mac.experiments.ablations import model_on_own_chunks
from mac.train import Trainer, load_agent


def test_model_on_own_chunks_matches_a_replay(tmp_path):
    cfg = make_config('tiny', {'dataset_dir': str(tmp_path / 'data'), 'device': 'cpu', 'steps': 20, 'terminals': True,
                                'agent.n': 3})   # 1000 steps = 333 chunks of 3 + 1 step: the last chunk ends early
    Trainer(cfg, tmp_path / 'run', progress=False).run()
    r = model_on_own_chunks(tmp_path / 'run', episodes=1, seed=1000, data_chunks=64, keep_chunks=True)
    ag, norm, _, _ = load_agent(tmp_path / 'run')
    n, d, T = cfg.agent.n, ag.action_dim, lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)
    env = _make_env(eval_env_name(cfg.env)); obs, _ = env.reset(seed=1000); steps, errs, judged = 0, [], []
    for c in r['records']:                                     # replay the recorded chunks in a fresh env with the same seed
        assert np.array_equal(norm(T(obs)).numpy(), c['obs'])
        succ = False
        for k in range(n):
            obs, _, term, trunc, info = env.step(np.clip(c['chunk'].reshape(n, d)[k], -1, 1)); steps += 1; succ |= bool(info['success'])
            if term or trunc: break
        assert np.array_equal(norm(T(obs)).numpy(), c['next_obs']) and c['full'] == (k == n - 1) and c['real_success'] == succ
        if k == n - 1 or succ: judged.append(c)
        if c['full']:
            with torch.no_grad(): errs.append(float(((T(c['next_obs']) - ag.dynamics(T(c['obs'])[None], T(c['chunk'])[None])[0]) ** 2).mean()))
            assert abs(errs[-1] - c['sq_err']) < 1e-6
            with torch.no_grad(): assert c['predicted_success'] == bool(ag.success(T(c['obs'])[None], T(c['chunk'])[None])[0] > 0)
    env.close()
    assert (term or trunc) and not r["records"][-1]["full"]     # the records cover the whole episode; its last chunk ran 1 step
    assert r['chunks'] == len(r['records']) == -(-steps // n)
    assert abs(r['own_dyn_mse'] - np.mean(errs)) < 1e-6 and abs(r['own_over_data'] - r['own_dyn_mse'] / r['data_dyn_mse']) < 1e-9
    assert len(judged) == len(r['records']) - 1                # the cut-off last chunk (no success) is left out of the success figures
    assert r['own_pred_success'] == np.mean([c['predicted_success'] for c in judged])
    assert r['own_real_success'] == np.mean([c['real_success'] for c in judged])
    assert r['own_false_success'] == np.mean([c['predicted_success'] and not c['real_success'] for c in judged])
