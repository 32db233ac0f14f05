# %% [markdown]
# # Action-chunk models
# > Deterministic chunk dynamics, reward and success models, open-loop rollouts, and why chunks cut compounding error (the paper's Figure 2).

# %%
#| default_exp models

# %%
#| export
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as Fn

from mac.core import MLP

# %%
#| hide
from pathlib import Path

import numpy as np
from fastcore.test import test_eq, test_close, test_fail
import matplotlib.pyplot as plt

from mac.core import seed_everything


# %% [markdown]
# ## In the paper
#
# > Namely, instead of training a single-step model $p(s_{t+1} \mid s_t, a_t)$, we train a multi-step model
# > $p(s_{t+n} \mid s_t, a_{t:t+n-1})$ that takes an action-chunk $a_{t:t+n-1}$ as input and predicts a future state that
# > is $n$-step ahead. This substantially reduces the number of recursive model calls and mitigates compounding errors
# > (Figure 1, left), enabling long-horizon imaginary rollouts over 100 environment steps. (Section 1)
#
# > $L^{\text{dyn}}(\psi) = \mathbb{E}_{(s_t, \mathbf{a}_t, \dots, s_{t+n}) \sim \mathcal{D}} [\|p_\psi(s_t, \mathbf{a}_t) - s_{t+n}\|_2^2], \quad (5)$
# >
# > $L^{\text{rew}}(\psi) = \mathbb{E}_{(s_t, \mathbf{a}_t, \dots, s_{t+n}) \sim \mathcal{D}} [\|r_\psi(s_t, \mathbf{a}_t) - \mathbf{r}_t\|_2^2], \quad (6)$ (Section 4.2)
#
# > For large-scale benchmarks, we parameterize the reward model and the terminal model using a single success
# > prediction network $f_\psi(s_t, a_t)$, where termination is calculated as $\mathbb{1}(f_\psi(s_t, a_t) > 0.5)$ and
# > reward is calculated as $\mathbb{1}(f_\psi(s_t, a_t) > 0.5) - 1$. For reward-based tasks, we use a reward model
# > $r_\psi(s_t, a_t)$ without termination. (Appendix A.1)
#
# > Specifically, we train dynamics models with action chunk lengths of $\{1, 5, 10, 25\}$ and measure their mean
# > squared prediction errors along a length-100 dataset trajectory in puzzle-4x5. Figure 2 presents the result,
# > suggesting that longer action chunks indeed substantially mitigate error accumulation. Notably, the errors from a
# > standard one-step model diverge over time, substantiating the necessity of multi-step prediction for long-horizon
# > tasks. (Section 5.3, Figure 2)
#
# | symbol | meaning | code |
# |---|---|---|
# | $p_\psi(s, \mathbf a) = s + f_\psi(s, \mathbf a)$ | chunk dynamics (delta-parameterised) | `ChunkDynamics` |
# | $r_\psi(s, \mathbf a)$ | chunk reward, regresses $\mathbf r_t$ | `ChunkReward` |
# | $f_\psi(s, [g], \mathbf a)$ | success logit | `ChunkSuccess` |
# | L | chunks per open-loop rollout | `chunks.shape[0]` |

# %% [markdown]
# ## Derivation: why fewer calls means less compounding
#
# Let the true dynamics $s \mapsto f(s)$ be λ-Lipschitz, let each model call add an error $\epsilon_t$ of size at most ε to
# the state it predicts (ε₁ for a one-step model, εₙ for a chunk model), and let $e_t = \|\hat s_t - s_t\|$ be the
# rollout's error after t environment steps.
#
# 1. **One-step model, one call.** $\hat s_{t+1} - s_{t+1} = f(\hat s_t) - f(s_t) + \epsilon_t$, so $e_{t+1} \le \lambda e_t + \epsilon_1$:
#    the error already made grows by λ, and the call injects a new one.
# 2. **One-step model, T steps.** Unrolling from $e_0 = 0$: $e_T \le \epsilon_1 \sum_{i=0}^{T-1} \lambda^i$, i.e. T injections,
#    the one made i steps before the end amplified by $\lambda^i$.
# 3. **Chunk model, one call.** It imitates the n-step map $f^n$, whose Lipschitz constant is $\lambda^n$ (at most), not λ:
#    $e_{t+(k+1)n} \le \lambda^n e_{t+kn} + \epsilon_n$.
# 4. **Chunk model, T steps.** With $T/n$ calls: $e_T \le \epsilon_n \sum_{j=0}^{T/n-1} \lambda^{nj}$, i.e. only T/n injections,
#    each amplified by the same true-dynamics factor ($\lambda^{nj}$ after $nj$ steps) as in step 2.
# 5. **The ratio.** Grouping step 2's sum in blocks of n, $\sum_{i<T} \lambda^i = S_n(\lambda) \sum_{j<T/n} \lambda^{nj}$ with
#    $S_n(\lambda) = \sum_{i<n} \lambda^i$, so the one-step bound is $(\epsilon_1/\epsilon_n)\, S_n(\lambda)$ times the chunk bound, for every T.
# 6. **What chunking buys.** Not slower growth (for λ > 1 both bounds grow like $\lambda^T$), but a constant factor:
#    it drops all but one injection in n, worth $S_n(\lambda)$ ($= n$ at λ = 1, more for λ > 1, less for λ < 1).
# 7. **When it pays.** The chunk model wins as long as one of its calls is less than $S_n(\lambda)$ times worse than a
#    one-step call, $\epsilon_n < S_n(\lambda)\,\epsilon_1$; a chunk call predicts further ahead, so $\epsilon_n > \epsilon_1$ is expected.
# 8. **What the bound leaves out.** A learned model's error is not a constant ε: it grows once an imagined state drifts off
#    the data, so an early error can also make later calls worse. Whether the trade pays off with learned models is
#    empirical: the experiment below measures it.

# %% [markdown]
# ## Toy: a linear system where both errors are measurable
#
# True dynamics $x_{t+1} = A x_t$; a one-step model $x \mapsto A x + e$ and a chunk model $x \mapsto A^n x + e$ that make
# the *same* error e on every call. With $A = \lambda I$ the bounds of steps 2 and 4 hold with equality, so the measured
# T-step errors must equal them, and their ratio must be $S_n(\lambda)$ whatever T. For any A the chunk model's
# error after k calls is $\sum_{j<k} A^{nj} e$ (step 4 without norms). Not exported: a notebook toy.

# %%
def chunk_model_error(A, e, n: int, T: int, x0):
    "Roll the truth x ↦ Aⁿx and the model x ↦ Aⁿx + e for T/n calls from x0 (S,); the error x̂ − x after each call (T/n, S)."
    An, x_hat, x, errs = torch.linalg.matrix_power(A, n), x0, x0, []
    for _ in range(T // n):
        x_hat, x = An @ x_hat + e, An @ x; errs.append(x_hat - x)
    return torch.stack(errs)

S_n = lambda lam, n: sum(lam ** i for i in range(n))                      # S_n(λ) = 1 + λ + … + λⁿ⁻¹
e, x0, n = torch.tensor([1e-3, -2e-3, 5e-4], dtype=torch.float64), torch.ones(3, dtype=torch.float64), 10
for lam in (0.9, 1.0, 1.05):
    A = lam * torch.eye(3, dtype=torch.float64)
    for T in (20, 100):
        e1, en = chunk_model_error(A, e, 1, T, x0)[-1].norm(), chunk_model_error(A, e, n, T, x0)[-1].norm()
        test_close(e1, e.norm() * S_n(lam, T), eps=1e-12)                  # step 2: T injections
        test_close(en, e.norm() * S_n(lam ** n, T // n), eps=1e-12)       # step 4: T/n injections, each grown by λ^{nj}
        test_close(e1 / en, S_n(lam, n), eps=1e-9)                         # step 5: a constant factor, the same for T = 20 and 100
torch.manual_seed(0); A = torch.eye(3, dtype=torch.float64) + 0.05 * torch.randn(3, 3, dtype=torch.float64)   # any A
test_close(chunk_model_error(A, e, n, 100, x0)[-1], sum(torch.linalg.matrix_power(A, n * j) @ e for j in range(10)), eps=1e-12)

# %%
lam, T = 1.05, 100
A = lam * torch.eye(3, dtype=torch.float64)
err1, errn = chunk_model_error(A, e, 1, T, x0).norm(dim=-1), chunk_model_error(A, e, n, T, x0).norm(dim=-1)
fig, ax = plt.subplots(figsize=(6, 3.4), dpi=80)
ax.plot(range(1, T + 1), err1, label='one-step model (T calls)')
ax.plot(range(n, T + 1, n), errn, 'o', ms=5, label=f'chunk model, n = {n} (T/n calls)')
ax.plot(range(1, T + 1), err1 / S_n(lam, n), ':', c='gray', label='one-step error / $S_n(\\lambda)$')
ax.set(yscale='log', xlabel='environment steps into the rollout', ylabel='$\\|\\hat x - x\\|$',
       title=f'Chunks keep the growth rate (λ = {lam}) and cut the error {S_n(lam, n):.1f}-fold')
ax.legend(fontsize=8); plt.show()


# %% [markdown]
# ## The models
#
# All three are the chapter-0 MLP on the concatenation of their inputs, in the official code's order (state,
# [goal], chunk). The dynamics predicts the *change* of state (official `delta_pred=True`): the paper writes
# $p_\psi(s, \mathbf a) \approx s_{t+n}$, and $s + f_\psi$ is that with a residual that starts near "no change".

# %%
#| exports
class ChunkDynamics(nn.Module):
    "p_ψ(s, a) = s + f_ψ(s, a): the state n steps after executing the chunk a (B, n·d) from s (B, S)."
    def __init__(self, obs_dim: int, action_dim: int, n: int, hidden=(512, 512, 512, 512)):
        super().__init__()
        self.obs_dim, self.action_dim, self.n = obs_dim, action_dim, n
        self.net = MLP(obs_dim + n * action_dim, obs_dim, hidden)

    def forward(self, obs, actions): return obs + self.net(torch.cat([obs, actions], -1))

    def loss(self, obs, actions, next_obs):
        "Eq. 5 (mean over batch and state dims): (p_ψ(s_t, a_t) − s_{t+n})²."
        return ((self(obs, actions) - next_obs) ** 2).mean()

class ChunkReward(nn.Module):
    "r_ψ(s, a): the chunk reward Σ γ^i r_{t+i} (or its mean, chapter 2a)."
    def __init__(self, obs_dim: int, action_dim: int, n: int, hidden=(512, 512, 512, 512)):
        super().__init__()
        self.net = MLP(obs_dim + n * action_dim, 1, hidden)

    def forward(self, obs, actions): return self.net(torch.cat([obs, actions], -1)).squeeze(-1)
    def loss(self, obs, actions, rewards): return ((self(obs, actions) - rewards) ** 2).mean()  # eq. (6)


# %%
#| exports
class ChunkSuccess(nn.Module):
    "f_ψ(s, [g], a) → success logit; success = 1(σ(f) > 0.5) gives termination and the reward success − 1."
    def __init__(self, obs_dim: int, action_dim: int, n: int, goal_dim: int = 0, hidden=(512, 512, 512, 512)):
        super().__init__()
        self.goal_dim = goal_dim
        self.net = MLP(obs_dim + goal_dim + n * action_dim, 1, hidden)

    def forward(self, obs, actions, goal=None):
        if (goal is None) != (self.goal_dim == 0): raise ValueError(f'this success model expects a goal of size {self.goal_dim}' if self.goal_dim else 'this success model takes no goal')
        if goal is not None: goal = goal.expand(*obs.shape[:-1], goal.shape[-1])   # one goal per rollout, over its H steps
        return self.net(torch.cat([obs, *([goal] if goal is not None else []), actions], -1)).squeeze(-1)

    def loss(self, obs, actions, success, goal=None):
        "Binary cross-entropy of the logit against the 0/1 success target."
        return Fn.binary_cross_entropy_with_logits(self(obs, actions, goal), success)

    def predict(self, obs, actions, goal=None):
        "(reward, termination) = (1(σ(f) > 0.5) − 1, 1(σ(f) > 0.5)) as floats."
        success = (self(obs, actions, goal) > 0).float()  # σ(f) > 0.5  ⇔  f > 0
        return success - 1, success


# %% [markdown]
# Checks: a zero network predicts "no change" (the delta parameterisation), shapes, the success model's
# reward/termination rule and its goal handling.

# %%
dyn = ChunkDynamics(4, 2, 3, hidden=(16, 16))
with torch.no_grad(): dyn.net[-1].weight.zero_(); dyn.net[-1].bias.zero_()
s, a = torch.randn(5, 4), torch.randn(5, 6)
suc = ChunkSuccess(4, 2, 3, hidden=(8,))
with torch.no_grad():
    test_eq(dyn(s, a), s)                                                    # f_ψ = 0  ⇒  p_ψ(s, a) = s
    test_eq(ChunkReward(4, 2, 3, hidden=(8,))(s, a).shape, (5,))
    suc.net[-1].bias.fill_(3.0); suc.net[-1].weight.zero_()
    r, term = suc.predict(s, a); test_eq((r, term), (torch.zeros(5), torch.ones(5)))   # confident success: r = 0, done
    suc.net[-1].bias.fill_(-3.0)
    r, term = suc.predict(s, a); test_eq((r, term), (-torch.ones(5), torch.zeros(5)))
test_eq(ChunkSuccess(4, 2, 3, goal_dim=2, hidden=(8,))(s, a, torch.randn(5, 2)).shape, (5,))
test_fail(lambda: ChunkSuccess(4, 2, 3, goal_dim=2, hidden=(8,))(s, a), contains='expects a goal of size 2')

# %% [markdown]
# The loss falls on a tiny problem (a linear system driven by 3-step chunks), and the success loss matches
# `F.binary_cross_entropy` on probabilities.

# %%
g = seed_everything(0)
A, Bm = torch.randn(4, 4) * 0.1, torch.randn(4, 6) * 0.3
dyn = ChunkDynamics(4, 2, 3, hidden=(64, 64)); opt = torch.optim.Adam(dyn.parameters(), lr=1e-3)
hist = []
for i in range(300):
    s, a = torch.randn(128, 4, generator=g), torch.rand(128, 6, generator=g) * 2 - 1
    loss = dyn.loss(s, a, s + s @ A.T + a @ Bm.T); opt.zero_grad(); loss.backward(); opt.step(); hist.append(loss.item())
print(f'dynamics loss {np.mean(hist[:10]):.3f} → {np.mean(hist[-10:]):.4f}')
assert np.mean(hist[-10:]) < 0.1 * np.mean(hist[:10])
tgt = torch.tensor([0., 1., 1., 0., 1.])
with torch.no_grad(): test_close(suc.loss(s[:5], a[:5], tgt), Fn.binary_cross_entropy(torch.sigmoid(suc(s[:5], a[:5])), tgt), eps=1e-5)


# %% [markdown]
# ## Open-loop rollouts
#
# Apply the model L times, feeding a given sequence of chunks: $\hat s_0 = s_0$, $\hat s_{k+1} = p_\psi(\hat s_k, \mathbf a_k)$.
# Batched over B start states; the result holds every predicted state.

# %%
#| exports
def rollout_open_loop(dynamics, obs0, chunks):
    "States (L+1, B, S) from s_0 (B, S) and chunks (L, B, n·d): ŝ_{k+1} = p_ψ(ŝ_k, a_k)."
    states = [obs0]
    for a in chunks: states.append(dynamics(states[-1], a))
    return torch.stack(states)


# %%
class Counting(nn.Module):  # wraps a model and counts its calls
    def __init__(self, m): super().__init__(); self.m, self.calls = m, 0
    def forward(self, *x): self.calls += 1; return self.m(*x)
dyn = ChunkDynamics(4, 2, 3, hidden=(16,))
s0, chunks = torch.randn(7, 4), torch.randn(2, 7, 6)
with torch.no_grad():
    test_close(rollout_open_loop(dyn, s0, chunks)[2], dyn(dyn(s0, chunks[0]), chunks[1]))  # = composing by hand
for n in (1, 10):
    c = Counting(ChunkDynamics(4, 2, n, hidden=(8,)))
    with torch.no_grad(): out = rollout_open_loop(c, s0, torch.randn(100 // n, 7, 2 * n))
    test_eq(c.calls, 100 // n); test_eq(out.shape, (100 // n + 1, 7, 4))      # 100 env steps: 100 calls for n=1, 10 for n=10

# %% [markdown]
# ## The compounding-error experiment (Figure 2)
#
# On a locally generated cube-double play dataset (chapter 2), train one dynamics model per chunk length
# n ∈ {1, 5, 10, 25}, same width and number of gradient steps. Then, on held-out trajectories from the validation
# split, start at the true $s_t$ and roll each model open-loop for 100 environment steps feeding the **true** action
# chunks; compare each prediction $\hat s_{t+kn}$ with **the same trajectory's** true state $s_{t+kn}$ (chapter 2a's
# window gather; the official measurement mixes trajectories: its `sample_consecutive` gathers the windows time-major but reshapes them as if batch-major, which interleaves different start states, [`datasets.py:502-507`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/datasets.py#L502-L507)). Every n uses the same start states. Error
# is the MSE over state dimensions in normalised observation space, averaged over trajectories, with a 95%
# confidence band.

# %% [markdown]
# The experiment's code, with a seconds-long run of it and a check of the measurement itself, is its own notebook,
# [chapter 5a](05a_model_error_experiment.ipynb) (`mac.experiments.model_error`), so that the model module above
# imports no data code.

# %% [markdown]
# ## Results: Figure 2 reproduced
#
# The committed run, made by `mac_model_error --out results/model_error` (cube-double play data, 200 + 20
# generated episodes; 512×4 models; 10k gradient steps each; 256 held-out trajectories; provenance in the folder):

# %%
res = Path('../results/model_error')
if (res / 'model_error.csv').exists():
    import csv as _csv
    table = list(_csv.DictReader(open(res / 'model_error.csv')))
    for n in sorted({int(r['n']) for r in table}):
        last = [r for r in table if int(r['n']) == n][-1]
        print(f"n = {n:2d}: MSE at env step {last['env_step']:>3s} = {float(last['mse']):.4g}  (95% CI {float(last['ci95_low']):.3g} to {float(last['ci95_high']):.3g})")
    from IPython.display import Image, display
    display(Image(filename=str(res / 'model_error.png')))
else: print('not run yet: mac_model_error --out results/model_error')

# %% [markdown]
# ## Implementation details
#
# 1. Delta parameterisation $p_\psi(s, \mathbf a) = s + f_\psi(s, \mathbf a)$ (official `delta_pred=True`); predicted
#    states are never clipped.
# 2. Losses are means over the batch and the state dimensions (official); Eq. 5 writes a squared norm.
# 3. One deterministic model, no ensemble (official MAC); the baselines' ensembles are not part of MAC.
# 4. The success model takes $[s, g, \mathbf a]$ when a goal is given (official, goal-conditioned) and $[s, \mathbf a]$
#    otherwise (the paper's $f_\psi(s_t, \mathbf a_t)$); success is $\sigma(f) > 0.5$. For reward-based tasks the paper
#    uses the reward model without termination; the official code still trains the success net there, on all-zero
#    targets (the single-task batches set every mask to 1, [`datasets.py:768`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/datasets.py#L768), and the success target is 1 − mask, [`mac.py:46`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L46)), so nothing terminates.
# 5. The model-error study compares each prediction with the *same* trajectory's true state; the official
#    `sample_consecutive` mixes trajectories ([`datasets.py:502-507`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/datasets.py#L502-L507)). We use cube-double (the paper: puzzle-4x5 from a
#    100M dataset, far beyond a 2-core machine) and 100 environment steps (the paper's figure; the code logs 150).

# %%
#| hide
import nbdev; nbdev.nbdev_export()
