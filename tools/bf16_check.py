"""bfloat16 against float32 on a trained MAC agent (issue 15): argmax-Q agreement on the same candidates, regret, and how
far each loss moves, at dataset states of the agent's own task.

    python tools/bf16_check.py --run results/cpu_study/preset/s0/run --ckpt checkpoint_28000.pt --out results/bench/bf16_agreement.json
"""
import argparse
import json
import time
from pathlib import Path

import torch

from mac.bench import bf16_agreement
from mac.batches import ChunkDataset
from mac.core import provenance, write_json
from mac.data import load_ogbench
from mac.train import load_agent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--run', required=True); ap.add_argument('--ckpt', default='checkpoint.pt'); ap.add_argument('--out', required=True)
    ap.add_argument('--states', type=int, default=4096); ap.add_argument('--seed', type=int, default=0); ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); t0 = time.time()
    agent, norm, cfg, ck = load_agent(Path(a.run) / a.ckpt)
    _, train, _ = load_ogbench(cfg.env, cfg.dataset_dir)
    data = ChunkDataset.from_ogbench(train, norm, ret=cfg.chunk_return, device='cpu')
    g = torch.Generator().manual_seed(a.seed)
    res = {}
    for N in (cfg.agent.n_train, cfg.agent.n_test):
        obs = data.sample(a.states, g)['observations']
        res[f'N={N}'] = bf16_agreement(agent, obs, N, data.sample(cfg.batch, g) if N == cfg.agent.n_test else None, g)
        print(f'N={N}:', json.dumps(res[f'N={N}']))
    write_json(a.out, dict(checkpoint=str(Path(a.run) / a.ckpt), step=ck['step'], env=cfg.env, results=res,
                           provenance=provenance(seed=a.seed, wall_time_s=time.time() - t0, device='cpu')))


if __name__ == '__main__':
    main()
