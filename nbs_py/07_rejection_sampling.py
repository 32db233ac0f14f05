# %% [markdown]
# # Rejection sampling
# > Act with the chunk the critic likes best among N samples of the behaviour policy: it stays on the learned behaviour policy's support, and the max favours the critic's overestimates.

# %%
#| default_exp rejection

# %%
#| export
from __future__ import annotations

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail
import torch
import math
import numpy as np
import matplotlib.pyplot as plt
from torch import nn
from mac.core import MLP, seed_everything
from mac.flow import VelocityField, flow_matching_loss, euler_sample


# %% [markdown]
# ## In the paper
#
# > To handle these challenges, we employ rejection sampling from an expressive behavioral action-chunk policy.
# > Specifically, we use flow matching (Lipman et al., 2024) to train a behavioral cloning (BC) action-chunk policy, and
# > *define* a policy as the $\arg \max$ action chunk (among $N$ chunks sampled from the BC policy) that maximizes the
# > learned value function:
# > $\pi(s_t) \stackrel{d}{=} \arg \max_{\{\mathbf{a}_{t:t+n-1}^{(i)}\}_{i=1}^N \sim \pi^\beta(a_{t:t+n-1} \mid s_t)} Q(s_t, \mathbf{a}_{t:t+n-1}^{(i)}), \quad (4)$
# > where $\pi^\beta(a_{t:t+n-1} \mid s_t) : \mathcal{S} \rightarrow \Delta(\mathcal{A}^n)$ denotes an action-chunk flow BC
# > policy, $Q(s_t, a_{t:t+n-1}) : \mathcal{S} \times \mathcal{A}^n \rightarrow \mathbb{R}$ denotes an action-chunk value
# > function, and $\stackrel{d}{=}$ denotes equality in distribution. (Section 4.1)
#
# > Compared to Gaussian policies, the flow-based behavior policy better models multi-modal action distributions,
# > allowing us to sample action chunks that stay in-distribution, which obviates the need for an additional uncertainty
# > penalization mechanism. (Section 4.1)
#
# > Specifically, we use $N_{\text{train}} = 8$ during training (except in `puzzle-4x5`, where a larger
# > $N_{\text{train}} = 32$ was necessary due to the BC policy branching over 20 possible actions) and
# > $N_{\text{test}} = 32$ at test time. (Appendix A.1)
#
# | symbol | meaning | code |
# |---|---|---|
# | $\pi^\beta$ | behaviour policy (the one-step $\pi_\omega$ in MAC) | `sample_fn(obs, N)` → (B, N, n·d) |
# | $Q(s, \mathbf a)$ | critic | `q_fn(obs, chunks)` → (B, N) |
# | N | candidates per state (8 in rollouts, 32 when acting) | `N` |

# %% [markdown]
# ## What it ensures, and what it does not
#
# 1. **Ensured: the chunk comes from the learned behaviour policy.** Every candidate is a sample of the behaviour
#    sampler and choosing among them passes no gradient to the actions, so nothing pushes the chosen chunk off that
#    sampler's support (gradient ascent on Q does, in the toy below). As N grows the policy moves from $\pi^\beta$
#    (N = 1) towards the best chunk in that support: a soft trust region set by N rather than by a penalty weight.
# 2. **Not ensured: that the sampler, the model or Q are right.** The support is that of a *learned* sampler (in MAC
#    the one-step student $\pi_\omega$, chapter 4), and inside rollouts it is queried at imagined states $\hat s_k$ that
#    may lie off the data. There the student can propose chunks the data never showed, and the dynamics model and Q
#    can be wrong about them.
# 3. **The max amplifies Q's errors.** The argmax favours candidates whose Q is overestimated: if N candidates are
#    equally good and Q errs by independent noise of std σ, the chosen one's Q exceeds its true value by σ times the
#    expected maximum of N standard normals, 0 for N = 1, 1.42 for N = 8, 2.07 for N = 32 (it grows like
#    $\sqrt{2 \ln N}$). A larger N buys a better chunk *and* a more optimistic Q.
# 4. **A constant Q** carries no information, and the policy stays $\pi^\beta$.

# %% [markdown]
# ## Implementation
#
# Batched over states and candidates, no Python loop over the batch: sample (B, N, n·d), score (B, N), gather
# the argmax per state.

# %%
#| exports
def rejection_sample(sample_fn, q_fn, obs, N: int):
    "Eq. 4: per state, the best of N behaviour chunks under Q; returns chunks (B, n·d) and their Q (B,)."
    chunks = sample_fn(obs, N)                               # (B, N, n·d), already clipped to [-1, 1]
    q = q_fn(obs, chunks)                                    # (B, N)
    best = q.argmax(-1)                                      # (B,)
    idx = best[:, None, None].expand(-1, 1, chunks.shape[-1])
    return chunks.gather(1, idx).squeeze(1), q.gather(1, best[:, None]).squeeze(1)


# %% [markdown]
# Checks: N = 1 returns the behaviour sample; the selected chunk's Q is the maximum; a constant Q leaves the
# behaviour distribution unchanged (argmax of ties is the first candidate, itself a behaviour sample); batched.

# %%
g = torch.Generator().manual_seed(0)
behaviour = lambda obs, N: torch.rand(obs.shape[0], N, 4, generator=g) * 2 - 1
q_sum = lambda obs, a: a.sum(-1) + obs[..., :1].sum(-1, keepdim=True) * 0  # prefers large entries
obs = torch.randn(5, 3)
g.manual_seed(1); one = behaviour(obs, 1)[:, 0]
g.manual_seed(1); pick, q = rejection_sample(behaviour, q_sum, obs, 1)
test_eq(pick, one)
g.manual_seed(2); cands = behaviour(obs, 16)
g.manual_seed(2); pick, q = rejection_sample(behaviour, q_sum, obs, 16)
test_eq(q, cands.sum(-1).max(-1).values); test_eq(pick.sum(-1), q)
assert ((cands == pick[:, None]).all(-1)).any(-1).all()     # the pick is one of the candidates, per state
g.manual_seed(3); big = rejection_sample(behaviour, lambda o, a: torch.zeros(a.shape[:2]), torch.randn(20000, 3), 8)[0]
test_close(big.mean(0), torch.zeros(4), eps=0.03); test_close(big.std(0), torch.full((4,), 2 / 12 ** 0.5), eps=0.03)  # still U[-1, 1]


# %% [markdown]
# Line 3, measured: every candidate is equally good (true Q = 0) and the learned Q is the truth plus N(0, 1) noise.
# The chosen chunk's Q must then overestimate by the expected maximum of N standard normals,
# $\int x\, N \varphi(x)\, \Phi(x)^{N-1} dx$, computed here by quadrature.

# %%
def expected_max(N: int) -> float:
    "E[max of N standard normals] = ∫ x·N·φ(x)·Φ(x)^(N−1) dx, by the trapezoidal rule."
    x = torch.linspace(-9, 9, 40001, dtype=torch.float64)
    phi, Phi = torch.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    return torch.trapezoid(x * N * phi * Phi ** (N - 1), x).item()

g.manual_seed(4)
noisy_q = lambda obs, a: torch.randn(a.shape[:2], generator=g)        # learned Q = true Q (0) + N(0, 1) error
over = {N: rejection_sample(behaviour, noisy_q, torch.zeros(20000, 3), N)[1].mean().item() for N in (1, 8, 32)}
for N, o in over.items(): test_close(o, expected_max(N), eps=0.03)    # overestimation of the chosen chunk's value
test_close([expected_max(8), expected_max(32)], [1.4236, 2.0697], eps=1e-4)   # the numbers quoted in line 3

# %% [markdown]
# ## Toy: a bandit with a two-mode behaviour policy
#
# One state, 2-D actions. The data come from two blobs, at (−0.6, 0) and (+0.6, 0). The true reward grows to the
# right inside the workspace, $r(\mathbf a) = a_1 - 0.3\,a_2^2$ for $\|\mathbf a\|_\infty \le 1$, and is $-2$ outside it
# (think of a joint limit the data never touches), so the best thing the data show is the right edge of the right blob.
# We learn Q from the data only (an MLP regressing the reward of the data's actions), then compare three ways to act:
#
# * **rejection sampling**: the best of N = 32 samples of a flow fitted to the data, scored by the learned Q;
# * **a Gaussian policy**: the data's mean and covariance, the best a unimodal Gaussian BC policy can do;
# * **gradient ascent on the learned Q**, started at a data point: what a policy trained to maximise Q does without
#   a behaviour constraint.

# %%
g = seed_everything(0)
def data_actions(B, g): return torch.where(torch.rand(B, 1, generator=g) < 0.5, torch.tensor([-0.6, 0.]), torch.tensor([0.6, 0.])) + 0.08 * torch.randn(B, 2, generator=g)
true_r = lambda a: torch.where(a.abs().max(-1).values <= 1, a[..., 0] - 0.3 * a[..., 1] ** 2, torch.tensor(-2.0))
data = data_actions(4000, g)
q_net = MLP(2, 1, hidden=(64, 64)); opt = torch.optim.Adam(q_net.parameters(), lr=3e-3)
for _ in range(3000):
    b = data[torch.randint(0, 4000, (256,), generator=g)]
    loss = ((q_net(b).squeeze(-1) - true_r(b)) ** 2).mean(); opt.zero_grad(); loss.backward(); opt.step()
flow = VelocityField(1, 2, hidden=(64, 64, 64)); opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
c1 = torch.ones(256, 1)
for _ in range(2000):
    loss = flow_matching_loss(flow, c1, data[torch.randint(0, 4000, (256,), generator=g)], generator=g)
    opt.zero_grad(); loss.backward(); opt.step()

# %%
with torch.no_grad():
    sample_fn = lambda o, N: euler_sample(flow, torch.ones(o.shape[0] * N, 1), torch.randn(o.shape[0] * N, 2, generator=g), 10).reshape(o.shape[0], N, 2)
    q_fn = lambda o, a: q_net(a).squeeze(-1)
    rs, _ = rejection_sample(sample_fn, q_fn, torch.zeros(500, 1), 32)
    gauss = torch.distributions.MultivariateNormal(data.mean(0), torch.cov(data.T)).sample((500,))
a = data[:50].clone().requires_grad_(True); opt_a = torch.optim.Adam([a], lr=0.05)
for _ in range(300): loss = -q_net(a).sum(); opt_a.zero_grad(); loss.backward(); opt_a.step()
ga = a.detach()
dist_to_data = lambda x: torch.cdist(x, data).min(1).values
summary = {name: (true_r(x).mean().item(), dist_to_data(x).median().item(), q_fn(None, x).mean().item())
           for name, x in {'rejection sampling (N = 32)': rs, 'Gaussian policy': gauss, 'gradient ascent on Q': ga}.items()}
for k, (r_, d_, q_) in summary.items(): print(f'{k:28s} true reward {r_:+.3f}   distance to data {d_:.3f}   learned Q {q_:+.3f}')

# %%
fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
ax.scatter(*data[:1500].T, s=2, c='lightgray', label='data (behaviour)')
ax.scatter(*gauss[:200].T, s=4, c='C3', alpha=0.5, label='Gaussian policy')
ax.scatter(*rs[:200].T, s=4, c='C0', label='rejection sampling, N = 32')
ax.scatter(*ga.T, s=12, marker='x', c='C2', label='gradient ascent on learned Q')
ax.set(title='Rejection sampling picks the good mode and stays on the data', xlabel='$a_1$', ylabel='$a_2$', aspect='equal')
ax.legend(fontsize=7, loc='best'); plt.show()

# %% [markdown]
# The assertions: rejection sampling is best by the true reward and stays on the data; the Gaussian sits between
# the modes; gradient ascent follows the learned Q's extrapolation off the data, where it promises more than the truth delivers.

# %%
(r_rs, d_rs, q_rs), (r_g, d_g, _), (r_ga, d_ga, q_ga) = summary.values()
assert d_rs < 0.1 and r_rs > r_g and r_rs > r_ga
assert d_ga > 3 * d_rs and q_ga > r_ga + 0.1          # off the data, Q over-promises
assert (rs[:, 0] > 0).float().mean() > 0.95          # rejection sampling chose the right-hand mode

# %% [markdown]
# ## Implementation details
#
# 1. Candidates are clipped to $[-1, 1]$ by the sampler before scoring (official `sample_actions`).
# 2. The argmax is taken independently per state; ties go to the first candidate (`torch.argmax`).
# 3. In MAC the sampler is the one-step policy $\pi_\omega$ (chapter 4), never the F-step flow: N_train = 8 inside
#    model rollouts, N_test = 32 when acting. Q is the online critic.

# %%
#| hide
import nbdev; nbdev.nbdev_export()
