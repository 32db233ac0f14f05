# %% [markdown]
# # One-step distillation
# > A one-step policy π_ω(s, z) that reproduces the F-step flow policy in a single network call, and the "without distillation" ablation.

# %%
#| default_exp distill

# %%
#| export
from __future__ import annotations

import torch
from torch import nn

from mac.core import MLP, median_seconds
from mac.policies import FlowChunkPolicy

# %%
#| hide
import time

import numpy as np
from fastcore.test import test_eq, test_close, test_fail
import matplotlib.pyplot as plt
from mac.core import seed_everything
from mac.flow import toy_sample, toy_modes, mode_coverage, train_toy_flow, euler_sample


# %% [markdown]
# ## In the paper
#
# > To compute a single action chunk using Equation (4), we need NF queries of the velocity field $v_\theta$ …
# > we train an additional one-step flow policy that directly predicts the output of the ODE flow policy …
# > with the following flow distillation loss (Park et al., 2025c):
# > $L^{\text{distill}}(\omega) = \mathbb E_{s_t \sim \mathcal D,\, z \sim \mathcal N(0, I_{nd})}\big[\|\pi_\omega(s_t, z) - \pi_\theta(s_t, z)\|_2^2\big]$ (Eq. 8)
#
# > Unlike the ODE policy, $\pi_\omega$ only requires a single network call to produce an action chunk, reducing
# > the number of queries from NF to N for rejection sampling. (Section 4.2)
#
# > w/o distillation: directly train the one-step flow model $\pi_\omega$ with flow matching BC loss. (Table 15)
#
# | symbol | meaning | code |
# |---|---|---|
# | $\pi_\theta(s, z)$ | teacher: F Euler steps of the flow from z, clipped | `FlowChunkPolicy(obs, z)` |
# | $\pi_\omega(s, z)$ | student: one MLP call on $[s, z]$ | `OneStepPolicy` |
# | N, F | samples per state, Euler steps | `N`, `steps` |

# %% [markdown]
# ## Derivation
#
# 1. The flow defines a *deterministic* map from noise to chunk for each state: $z \mapsto \pi_\theta(s, z)$ (F Euler steps).
# 2. Pushing $z \sim \mathcal N(0, I)$ through it gives the behaviour distribution. Any other function that equals this
#    map pushes the same $z$ to the same chunks, hence has the same distribution.
# 3. So distillation is plain regression of the map on (state, noise) pairs: Eq. 8 with a stop-gradient on the
#    teacher. It needs no data chunks, only states, and its minimiser is $\pi_\theta$ itself.
# 4. **The ablation.** "Directly train the one-step model with the flow-matching loss" we read as: a velocity field
#    $v_\omega$ trained by Eq. 2/7 and used as $\pi_\omega(s, z) = \mathrm{clip}(z + v_\omega(0, s, z))$ (one Euler step).
#    Chapter 1 (derivation step 6) showed what that converges to: at $u = 0$, $v^\star(0, s, z) = \mathbb E[\mathbf a \mid s] - z$,
#    so $\pi_\omega(s, z) \approx \mathbb E[\mathbf a \mid s]$ for *every* z: the mean chunk, the mode average a Gaussian
#    would give, with no diversity left for rejection sampling. (The official code has no implementation of this
#    ablation: its one-step model learns only from the distillation term, which the BC loss always adds to the
#    flow loss, [`mac.py:95-104`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L95-L104), and no option switches that off. The reading above is ours.)

# %% [markdown]
# ## Implementation
#
# The student is the chapter-0 MLP on $[s, z]$ (official `actor_onestep_flow`: no time input, no tanh); its
# output is clipped to $[-1, 1]$ only when it is used to act.

# %%
#| exports
class OneStepPolicy(nn.Module):
    "π_ω(s, z) → chunk (B, n·d) in one MLP call; clipped to [-1, 1] when sampling."
    def __init__(self, obs_dim: int, action_dim: int, n: int, hidden=(512, 512, 512, 512)):
        super().__init__()
        self.obs_dim, self.action_dim, self.n = obs_dim, action_dim, n
        self.net = MLP(obs_dim + n * action_dim, n * action_dim, hidden)

    def forward(self, obs, z):  # (B, S), (B, n·d)
        return self.net(torch.cat([obs, z], -1))

    def sample(self, obs, N: int, generator=None, z=None):
        "N clipped chunks per state (B, N, n·d), from fresh noise or the given z (B, N, n·d)."
        B, nd = obs.shape[0], self.n * self.action_dim
        if z is None: z = torch.randn((B, N, nd), generator=generator, device=obs.device)
        return self(obs[:, None].expand(B, N, -1), z).clamp(-1, 1)


# %%
#| exports
def distillation_loss(student: OneStepPolicy, teacher: FlowChunkPolicy, obs, z=None, steps: int = 10, generator=None):
    "Eq. 8: mean over batch and dims of (π_ω(s, z) − stopgrad π_θ(s, z))², the teacher's F-step chunk clipped."
    if z is None: z = torch.randn((obs.shape[0], teacher.n * teacher.action_dim), generator=generator, device=obs.device)
    with torch.no_grad(): target = teacher(obs, z, steps)
    return ((student(obs, z) - target) ** 2).mean()


# %%
# The 'without distillation' ablation as a map (s, z) ↦ chunk, for the checks below. Not exported: the agent
# (chapter 8) samples it as `flow.sample(obs, N, steps=1)`, the same map with the noise drawn for it.
def one_euler_step_policy(flow: FlowChunkPolicy):
    "The 'without distillation' ablation: the flow's own velocity field used with a single Euler step."
    return lambda obs, z: flow(obs, z, steps=1)


# %% [markdown]
# Checks: shapes; each state's N candidates are $\mathrm{clip}(\pi_\omega(s_b, z_{bj}))$ at that state; the loss equals the
# mean squared gap to the teacher's F = 10 Euler steps written out by hand (clipped), and is zero when the student *is*
# the teacher's map; no gradient reaches the teacher; sampling clips.

# %%
teacher, student = FlowChunkPolicy(3, 2, 2, hidden=(8, 8)), OneStepPolicy(3, 2, 2, hidden=(8, 8))
obs, z = torch.randn(5, 3), torch.randn(5, 4)
with torch.no_grad():
    test_eq(student(obs, z).shape, (5, 4)); test_eq(student.sample(obs, 7).shape, (5, 7, 4))
    zN = torch.randn(5, 7, 4)                                           # given noise: candidate j of state b is π_ω(s_b, z_bj)
    test_close(student.sample(obs, 7, z=zN), torch.stack([student(obs[b].expand(7, 3), zN[b]) for b in range(5)]).clamp(-1, 1), eps=1e-5)
    x = z                                                               # the teacher's target by hand: 10 Euler steps, then clip
    for i in range(10): x = x + 0.1 * teacher.v(obs, x, torch.full((5, 1), i / 10))
    test_close(distillation_loss(student, teacher, obs, z), ((student(obs, z) - x.clamp(-1, 1)) ** 2).mean(), eps=1e-6)
class Exact(nn.Module):  # a "student" that runs the teacher: the loss must vanish
    def forward(self, obs, z): return teacher(obs, z)
test_close(distillation_loss(Exact(), teacher, obs, z), 0.0)
distillation_loss(student, teacher, obs, z).backward()
assert all(p.grad is None for p in teacher.parameters()) and all(p.grad is not None for p in student.parameters())
with torch.no_grad():
    student.net[-1].bias.fill_(9.0)
    test_eq(student.sample(obs, 3).max().item(), 1.0)


# %% [markdown]
# The ablation against a closed form. For the linear field $v(u, s, \mathbf x) = m(s) - \mathbf x$, F Euler steps of size
# $1/F$ give $\mathbf x_F = m + (1 - 1/F)^F (z - m)$: one step lands on $m(s)$ for *every* z (derivation step 4's collapse
# to the mean), ten keep $0.9^{10} \approx 0.35$ of the noise, and `distillation_loss` uses the teacher with the `steps` it is
# given. On a network field, one step is $\mathrm{clip}(z + v(0, s, z))$.

# %%
class LinearField(nn.Module):  # v(u, s, x) = m(s) − x with m(s) = 0.5·tanh(s_0) in every entry
    def forward(self, s, x, u): return 0.5 * torch.tanh(s[:, :1]) - x
lin_flow = FlowChunkPolicy(3, 2, 2, hidden=(8,)); lin_flow.v = LinearField()
m = 0.5 * torch.tanh(obs[:, :1]).expand(5, 4)
test_close(one_euler_step_policy(lin_flow)(obs, z), m, eps=1e-6)                          # one step: the mean, whatever z
test_close(lin_flow(obs, z, steps=10), (m + 0.9 ** 10 * (z - m)).clamp(-1, 1), eps=1e-6)
st = OneStepPolicy(3, 2, 2, hidden=(8,))
with torch.no_grad():
    test_close(distillation_loss(st, lin_flow, obs, z, steps=3), ((st(obs, z) - (m + (2 / 3) ** 3 * (z - m)).clamp(-1, 1)) ** 2).mean(), eps=1e-6)
    test_close(one_euler_step_policy(teacher)(obs, z), (z + teacher.v(obs, z, torch.zeros(5, 1))).clamp(-1, 1), eps=1e-6)
    # the agent's sampler for this ablation, `flow.sample(obs, 1, steps=1)`, is the same map on the noise it draws
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    test_close(teacher.sample(obs, 1, steps=1, generator=g1)[:, 0],
               one_euler_step_policy(teacher)(obs, torch.randn(z.shape, generator=g2)), eps=1e-6)

# %% [markdown]
# ## Does it work? Distilling the chapter-1 toy flow
#
# Train the toy flow (as in chapter 1), then a one-step student by Eq. 8 from the flow's 10-step samples. Toy
# samples are not confined to $[-1, 1]$, so the toy teacher is used without clipping (a `steps`-only wrapper).

# %%
g = seed_everything(0)
flow_v, _ = train_toy_flow(4000, generator=g, progress=False)
teacher_toy = lambda c, z, steps=10: euler_sample(flow_v, c, z, steps)
student_toy = OneStepPolicy(3, 2, 1, hidden=(128,) * 4)
opt = torch.optim.Adam(student_toy.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 3000)
t0, curve = time.time(), []
for i in range(3000):
    c, _, _ = toy_sample(256, g); z = torch.randn(256, 2, generator=g)
    with torch.no_grad(): target = teacher_toy(c, z)
    loss = ((student_toy(c, z) - target) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step(); sched.step(); curve.append(loss.item())
print(f'distilled in {time.time() - t0:.1f}s: loss {np.mean(curve[:50]):.3f} → {np.mean(curve[-200:]):.4f}')

# %%
c, x1, cid = toy_sample(6000, torch.Generator().manual_seed(1))
z = torch.randn(6000, 2, generator=torch.Generator().manual_seed(2))
with torch.no_grad():
    outs = {'data': x1, 'teacher (F = 10)': teacher_toy(c, z), 'student (1 call)': student_toy(c, z),
            'no distillation (1 Euler step)': teacher_toy(c, z, 1)}
cover = {k: [mode_coverage(v[cid == m], ms)[0] for m, ms in enumerate(toy_modes())] for k, v in outs.items()}
gap = {k: ((v - outs['teacher (F = 10)']) ** 2).sum(-1).sqrt().median().item() for k, v in outs.items() if k != 'data'}
for k in outs: print(f'{k:32s} on-mode {np.round(cover[k], 2)}' + (f'   median |·− teacher| {gap[k]:.3f}' if k in gap else ''))

# %%
fig, axs = plt.subplots(1, 4, figsize=(12, 3.2), dpi=80, layout='constrained')
axs[0].plot(curve); axs[0].set(yscale='log', title='Distillation loss (Eq. 8)', xlabel='step', ylabel='MSE to teacher')
for ax, k in zip(axs[1:], ['teacher (F = 10)', 'student (1 call)', 'no distillation (1 Euler step)']):
    ax.scatter(*outs[k][:2000].T, s=1, alpha=0.3, c=cid[:2000], cmap='tab10', vmin=0, vmax=9)
    ax.set(title=f'{k}\non-mode {np.mean(cover[k]):.0%}', aspect='equal', xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), xticks=[], yticks=[])
for i in range(12):  # the same z through teacher and student: short segments
    axs[2].plot([outs['teacher (F = 10)'][i, 0], outs['student (1 call)'][i, 0]], [outs['teacher (F = 10)'][i, 1], outs['student (1 call)'][i, 1]], 'k-', lw=0.8)
fig.suptitle('The distilled student matches the 10-step teacher from the same noise; one Euler step collapses to the mean'); plt.show()

# %% [markdown]
# The assertions. Tolerance for "matches": modes here are 0.25 wide (std) and at least 1.9 apart, so a student
# whose median distance to the teacher's sample *from the same z* is below 0.25 (one mode std) lands each sample
# in the same mode as the teacher; we also ask that it keeps the teacher's mode coverage within 10 points.
# The ablation must be measurably worse: its samples sit on the mean, on no mode.

# %%
assert gap['student (1 call)'] < 0.25, gap
assert all(abs(a - b) < 0.10 for a, b in zip(cover['student (1 call)'], cover['teacher (F = 10)'])), cover
assert all(on < 0.1 for on in cover['no distillation (1 Euler step)']), cover
assert gap['no distillation (1 Euler step)'] > 4 * gap['student (1 call)']


# %% [markdown]
# ## What it buys: sampling cost
#
# Rejection sampling draws N = 32 chunks (n = 10, d = 5) per state: the teacher needs F = 10 sequential network
# calls on a batch of 32, the student one. Measured here at the paper's width (512×4) and at 256×4, on this CPU,
# median of 200 calls (a measurement printed for reading, not a test; `mac.distill.bench_sampling` runs it).

# %%
#| export
def bench_sampling(widths=(512, 256), obs_dim: int = 28, n: int = 10, d: int = 5, N: int = 32, F: int = 10,
                   reps: int = 200, device='cpu') -> list[dict]:
    "Median ms to sample N chunks for one state: one-step student vs F-step flow teacher."
    rows = []
    for w in widths:
        teacher = FlowChunkPolicy(obs_dim, d, n, (w,) * 4).to(device).eval()
        student = OneStepPolicy(obs_dim, d, n, (w,) * 4).to(device).eval()
        obs = torch.randn(1, obs_dim, device=device)
        for name, fn in (('student (1 call)', lambda: student.sample(obs, N)), (f'teacher (F = {F})', lambda: teacher.sample(obs, N, F))):
            with torch.inference_mode(): t = median_seconds(fn, reps, warmup=20)
            rows.append(dict(width=f'{w}x4', sampler=name, N=N, median_ms=round(1e3 * t, 3)))
    return rows


# %%
for r in bench_sampling(reps=100): print(r)

# %% [markdown]
# ## Implementation details
#
# 1. The teacher's target is its F = 10-step Euler chunk **clipped** to $[-1, 1]$ and under stop-gradient (official
#    `sample_flow_actions`); the student's output is not squashed, and is clipped only when sampling.
# 2. The student sees $[s, z]$ with no time input (official `actor_onestep_flow`).
# 3. The loss is a mean over the batch and the n·d dimensions, like the official code (Eq. 8 writes a squared norm).
# 4. "Without distillation" is read as the flow's own velocity field used with one Euler step; by chapter 1's
#    derivation this returns the conditional mean chunk for every z. The official code has no implementation of it.
# 5. Fresh noise z is drawn for the distillation loss, independent of the flow loss's noise (as the official code).

# %%
#| hide
import nbdev; nbdev.nbdev_export()
