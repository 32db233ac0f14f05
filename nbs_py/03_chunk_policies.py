# %% [markdown]
# # Action-chunk policies
# > A flow-matching behaviour policy over whole action chunks, and the Gaussian chunk policy of the MAC(Gau) ablation.

# %%
#| default_exp policies

# %%
#| export
from __future__ import annotations

import math

import torch
from torch import nn

from mac.core import MLP
from mac.flow import VelocityField, euler_sample, flow_matching_loss

# %%
#| hide
import time
from pathlib import Path

from fastcore.test import test_eq, test_close, test_fail
import matplotlib.pyplot as plt

from mac.core import seed_everything


# %% [markdown]
# ## In the paper
#
# > To train a flow BC policy, we train a state-dependent velocity field $v_\theta : \mathbb R \times \mathcal S \times
# > \mathcal A^n \to \mathcal A^n$, with the flow-matching loss (Eq. 7)
# > $L^{\text{flow}}(\theta) = \mathbb E\big[\|v_\theta(u, s_t, \mathbf a_z) - (\mathbf a_t - z)\|_2^2\big]$ …
# > We define $\pi_\theta(s_t, z)$ as the destination of the induced flow at $u = 1$ when starting with $(s_t, z)$ at $u = 0$.
#
# > Compared to Gaussian policies, the flow-based behavior policy better models multi-modal action distributions,
# > allowing us to sample action chunks that stay in-distribution. (Section 4.1)
#
# > MAC(Gau): a Gaussian action-chunk policy $a = \tanh(x)$, $x \sim \mathcal N(\mu(s), \sigma^2(s))$ instead of a
# > flow policy (Section 5, Table 3).
#
# | symbol | meaning | code |
# |---|---|---|
# | $s_t$ | state (normalised observation) | `obs`, (B, S) |
# | $\mathbf a_t$ | action chunk, n actions of size d, flattened time-major | `actions`, (B, n·d) |
# | $z$ | noise, $\mathcal N(0, I_{nd})$ | `z`, (B, n·d) |
# | $v_\theta(u, s, \mathbf a_u)$ | velocity field | `FlowChunkPolicy.v` |
# | F | Euler steps (10) | `steps` |
# | N | samples per state | `N` |
#
# **Convention.** As in chapter 1 we put noise at $u=0$ and the chunk at $u=1$ (Eq. 2 and the official code, [`mac.py:83-87`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L83-L87)):
# $\mathbf a_u = (1-u) z + u \mathbf a_t$ with target $\mathbf a_t - z$. Eq. 7 as printed interpolates the other way,
# $\mathbf a_z = (1-u)\mathbf a_t + u z$, while keeping the target $\mathbf a_t - z$, which cannot both hold
# (the straight path from $\mathbf a_t$ at $u=0$ to $z$ at $u=1$ has velocity $z - \mathbf a_t$, the negative of that target).

# %% [markdown]
# ## Toy first: two ways around an obstacle
#
# A 1-D "state" $s \in [-1, 1]$ and chunks of n = 5 planar actions. From every state the data goes around an
# obstacle either on the left or on the right (50/50), with a little noise. The mean chunk goes straight into the
# obstacle. A conditional flow over the flattened 10-D chunk should keep both routes; a Gaussian cannot.

# %%
def toy_chunks(B, g):
    s = torch.rand(B, 1, generator=g) * 2 - 1
    side = torch.randint(0, 2, (B, 1), generator=g) * 2 - 1                     # left (-1) or right (+1)
    t = torch.arange(1, 6) / 5
    dx = side * 0.6 * torch.sin(math.pi * t) * (1 + 0.3 * s)                  # sideways bulge, scaled by the state
    path = torch.stack([dx, t.expand_as(dx)], -1)                                 # (B, 5, 2) positions
    acts = torch.diff(path, dim=1, prepend=torch.zeros(B, 1, 2)) * 2              # per-step actions
    return s, (acts + 0.02 * torch.randn(acts.shape, generator=g)).clamp(-1, 1).reshape(B, 10)

def implied_path(chunks, d=2):  # cumulative sum of the actions: where the chunk moves (up to the factor 2 above)
    return chunks.reshape(*chunks.shape[:-1], -1, d).cumsum(-2) / 2

s, a = toy_chunks(4, torch.Generator().manual_seed(0))
test_eq(a.shape, (4, 10)); assert a.abs().max() <= 1


# %% [markdown]
# ## The flow chunk policy
#
# The velocity field is chapter 1's, conditioned on the state and acting on the flattened n·d chunk: inputs
# $[s, \mathbf a_u, u]$ in the official code's order. Training is Eq. 2 on dataset chunks; sampling is F Euler
# steps from $z \sim \mathcal N(0, I_{nd})$, clipped to $[-1, 1]$ once at the end (the official `sample_flow_actions`).

# %%
#| exports
class FlowChunkPolicy(nn.Module):
    "π_θ: a velocity field v_θ(s, a_u, u) over flattened action chunks, sampled by F Euler steps from noise."
    def __init__(self, obs_dim: int, action_dim: int, n: int, hidden=(512, 512, 512, 512)):
        super().__init__()
        self.obs_dim, self.action_dim, self.n = obs_dim, action_dim, n
        self.v = VelocityField(obs_dim, n * action_dim, hidden)

    def loss(self, obs, actions, x0=None, u=None, generator=None):
        "Flow-matching BC loss (Eq. 7, in Eq. 2's convention) on dataset chunks (B, n·d)."
        return flow_matching_loss(self.v, obs, actions, x0=x0, u=u, generator=generator)

    def forward(self, obs, z, steps: int = 10):
        "π_θ(s, z): the chunk the flow carries noise z (B, n·d) to, clipped to [-1, 1]."
        return euler_sample(self.v, obs, z, steps, clip=1.0)

    def sample(self, obs, N: int, steps: int = 10, generator=None):
        "N chunks per state: (B, N, n·d)."
        B = obs.shape[0]
        z = torch.randn((B * N, self.n * self.action_dim), generator=generator, device=obs.device)
        return self(obs.repeat_interleave(N, 0), z, steps).reshape(B, N, -1)


# %% [markdown]
# ## The Gaussian chunk policy (MAC(Gau))
#
# As the official ablation (`mbrs_ac.py` builds a `GCActor`, [`mbrs_ac.py:364-373`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mbrs_ac.py#L364-L373), with the settings of
# [`mbrs_ac.py:436-439`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mbrs_ac.py#L436-L439); the actor is [`networks.py:199-212`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/networks.py#L199-L212) and [`networks.py:252-256`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/networks.py#L252-L256)): the MLP's hidden layers (each ending in
# LayerNorm), then two linear heads for the mean $\mu(s)$ and log-std of $x$, initialised small (Xavier with
# gain 0.1, i.e. variance scale 0.01); the log-std is clipped to $[-5, 2]$ and the chunk is $\mathbf a = \tanh(x)$.
# With $x = \operatorname{atanh}(\mathbf a)$, the change of variables gives
#
# $$\log \pi(\mathbf a \mid s) = \sum_{j=1}^{nd} \Big[\log \mathcal N(x_j; \mu_j, \sigma_j^2) - \log(1 - a_j^2)\Big],$$
#
# and BC maximises it on dataset chunks (whose entries are clipped to $\pm(1 - 10^{-5})$, so $\operatorname{atanh}$ stays finite).

# %%
#| exports
class GaussianChunkPolicy(nn.Module):
    "π(a|s) = tanh(x), x ~ N(μ(s), σ(s)²) over flattened chunks; log-std clipped to [-5, 2]."
    def __init__(self, obs_dim: int, action_dim: int, n: int, hidden=(512, 512, 512, 512), log_std_range=(-5.0, 2.0)):
        super().__init__()
        self.obs_dim, self.action_dim, self.n, self.log_std_range = obs_dim, action_dim, n, log_std_range
        self.trunk = nn.Sequential(*list(MLP(obs_dim, 1, hidden))[:-1])  # hidden blocks only, ending in LayerNorm
        self.mean, self.log_std = nn.Linear(hidden[-1], n * action_dim), nn.Linear(hidden[-1], n * action_dim)
        for head in (self.mean, self.log_std): nn.init.xavier_uniform_(head.weight, gain=0.1); nn.init.zeros_(head.bias)

    def forward(self, obs):
        "μ(s) and clipped log σ(s), each (B, n·d)."
        h = self.trunk(obs)
        return self.mean(h), self.log_std(h).clamp(*self.log_std_range)

    def log_prob(self, obs, actions):
        "log π(a|s) of chunks strictly inside (-1, 1): Gaussian log-density of atanh(a) minus log(1 - a²)."
        mu, log_std = self(obs)
        x = torch.atanh(actions)
        log_n = -0.5 * ((x - mu) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        return (log_n - torch.log1p(-actions ** 2)).sum(-1)

    def loss(self, obs, actions):
        "BC: mean negative log-likelihood of dataset chunks."
        return -self.log_prob(obs, actions).mean()

    def sample(self, obs, N: int, generator=None):
        "N chunks per state, tanh-squashed and clipped to [-1, 1]: (B, N, n·d)."
        mu, log_std = self(obs)
        eps = torch.randn((obs.shape[0], N, mu.shape[-1]), generator=generator, device=obs.device)
        return torch.tanh(mu[:, None] + log_std.exp()[:, None] * eps).clamp(-1, 1)


# %% [markdown]
# Checks. The log-likelihood against `torch.distributions` (a Normal pushed through `TanhTransform`) on a hand
# case; shapes; sampling is clipped; the flow chunk equals F = 10 Euler steps written out by hand (inputs $[s, \mathbf a_u, u]$,
# one clip at the end); and each state's N candidates depend on that state alone.

# %%
gp = GaussianChunkPolicy(3, 2, 2, hidden=(8, 8))
obs, acts = torch.randn(4, 3), torch.rand(4, 4) * 1.8 - 0.9
mu, log_std = gp(obs)
ref = torch.distributions.TransformedDistribution(torch.distributions.Normal(mu, log_std.exp()),
                                                  [torch.distributions.TanhTransform()]).log_prob(acts).sum(-1)
test_close(gp.log_prob(obs, acts), ref, eps=1e-4)
with torch.no_grad():  # hand case: μ = 0, σ = 1, a = tanh(0.5) in one dimension
    gp1 = GaussianChunkPolicy(1, 1, 1, hidden=(4,)); gp1.mean.weight.zero_(); gp1.log_std.weight.zero_()
    a1 = torch.tanh(torch.tensor([[0.5]]))
    test_close(gp1.log_prob(torch.zeros(1, 1), a1), -0.5 * 0.25 - 0.5 * math.log(2 * math.pi) - math.log(1 - a1.item() ** 2), eps=1e-5)
    gp.log_std.bias.fill_(10.0); test_close(gp(obs)[1], torch.full((4, 4), 2.0))  # log-std clipped at 2
g = torch.Generator().manual_seed(0)
with torch.no_grad(): sm = gp.sample(obs, 32, generator=g)
test_eq(sm.shape, (4, 32, 4)); assert sm.abs().max() <= 1
fp = FlowChunkPolicy(3, 2, 2, hidden=(8, 8))
z = torch.randn(4, 4)
with torch.no_grad():
    x = z                                                                  # F = 10 Euler steps by hand: x ← x + v(s, x, i/10)/10
    for i in range(10): x = x + 0.1 * fp.v.net(torch.cat([obs, x, torch.full((4, 1), i / 10)], -1))
    test_close(fp(obs, z), x.clamp(-1, 1), eps=1e-6)
    sm = fp.sample(obs, 5, generator=torch.Generator().manual_seed(1)); test_eq(sm.shape, (4, 5, 4))
    obs2 = obs.clone(); obs2[0] += 1                                       # move state 0 only, same noise:
    sm2 = fp.sample(obs2, 5, generator=torch.Generator().manual_seed(1))
    test_eq(sm2[1:], sm[1:]); assert not torch.equal(sm2[0], sm[0])          # only state 0's candidates change
    fp.v.net[-1].bias.fill_(50.0)
    test_eq(fp(obs, z).max().item(), 1.0)                                  # clipped to [-1, 1]
test_eq(fp.v.net[0].in_features, 3 + 4 + 1)                                # inputs [s, a_u, u]

# %% [markdown]
# Gaussian sampling draws what the likelihood describes: with 20 000 samples per state, $\operatorname{atanh}$ of the
# samples has mean $\mu(s)$ and standard deviation $\sigma(s)$ (standard errors below 0.01; heads set away from their
# near-zero initialisation so that a wrong $\mu$ or $\sigma$ shows), and the same generator seed gives the same samples.

# %%
gq = GaussianChunkPolicy(3, 2, 2, hidden=(8, 8))
with torch.no_grad():
    gq.mean.bias.uniform_(-1, 1); gq.log_std.bias.uniform_(-1, -0.2)
    mu, log_std = gq(obs)
    x = torch.atanh(gq.sample(obs, 20_000, generator=torch.Generator().manual_seed(2)))   # (4, 20000, 4)
    test_close(x.mean(1), mu, eps=0.05); test_close(x.std(1), log_std.exp(), eps=0.05)
    test_eq(gq.sample(obs, 3, generator=torch.Generator().manual_seed(5)), gq.sample(obs, 3, generator=torch.Generator().manual_seed(5)))


# %% [markdown]
# ## Does it work? The toy
#
# Train both for a few seconds (narrow nets; same steps, batch and learning rate) and draw 64 chunks at three states.

# %%
def train(policy, steps=1500, g=None):
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    for _ in range(steps):
        s, a = toy_chunks(256, g)
        loss = policy.loss(s, a.clamp(-1 + 1e-5, 1 - 1e-5))
        opt.zero_grad(); loss.backward(); opt.step()
    return policy

g = seed_everything(0); t0 = time.time()
flow_toy = train(FlowChunkPolicy(1, 2, 5, hidden=(128,) * 4), g=g)
gauss_toy = train(GaussianChunkPolicy(1, 2, 5, hidden=(128,) * 4), g=g)
print(f'trained both in {time.time() - t0:.1f}s')

# %%
states = torch.tensor([[-0.8], [0.0], [0.8]])
with torch.no_grad():
    samples = {'flow (F = 10)': flow_toy.sample(states, 64, generator=torch.Generator().manual_seed(3)),
               'Gaussian': gauss_toy.sample(states, 64, generator=torch.Generator().manual_seed(3))}
fig, axs = plt.subplots(1, 3, figsize=(9, 3), dpi=80, sharey=True)
for i, ax in enumerate(axs):
    for (name, sm), col in zip(samples.items(), ('C0', 'C3')):
        for p in implied_path(sm[i]): ax.plot(*torch.cat([torch.zeros(1, 2), p]).T, color=col, alpha=0.25, lw=1)
        ax.plot([], [], color=col, label=name)
    ax.add_patch(plt.Circle((0, 0.5), 0.12, color='k', alpha=0.3))
    ax.set(title=f's = {states[i].item():+.1f}', xlim=(-0.6, 0.6), aspect='equal', xlabel='x')
axs[0].set_ylabel('y'); axs[0].legend(fontsize=8, loc='lower left')
fig.suptitle('64 sampled chunks per state: the flow keeps both routes, the Gaussian drives into the obstacle'); plt.show()

# %% [markdown]
# A number to go with the picture: the sideways offset at the chunk's midpoint. Data are at ±0.6·(1 + 0.3s), never
# near 0; a sample "in the obstacle" has |offset| < 0.15.

# %%
mid = {k: implied_path(v)[..., 2, 0] for k, v in samples.items()}   # (3, 64) x-offset after 3 of 5 steps
in_obstacle = {k: (v.abs() < 0.15).float().mean().item() for k, v in mid.items()}
both_sides = {k: min((v > 0.15).float().mean(), (v < -0.15).float().mean()).item() for k, v in mid.items()}
print('share of chunks through the obstacle', in_obstacle, '\nshare on the rarer side', both_sides)
assert in_obstacle['flow (F = 10)'] < 0.1 and both_sides['flow (F = 10)'] > 0.3
assert in_obstacle['Gaussian'] > 2 * in_obstacle['flow (F = 10)'] + 0.1

# %% [markdown]
# ## On OGBench data
#
# The same comparison on a real dataset is an experiment with a command, because training at the paper's width
# takes minutes on a CPU: `mac_policy_demo` generates (if missing) a small cube-single play dataset, trains both
# policies with the same budget, and, at held-out states from the validation split, draws 32 chunks from each.
# It reports how close the nearest of the 32 samples comes to the chunk the oracle actually took (the question
# rejection sampling asks: is a good chunk among the candidates?) and the mean distance, and plots the
# end-effector paths the chunks imply (cumulative xy actions).

# %% [markdown]
# The experiment's code lives in its own notebook, [chapter 3a](03a_policy_experiment.ipynb)
# (`mac.experiments.chunk_policies`), so that the policy module above imports no data code.

# %% [markdown]
# The committed run (`mac_policy_demo --out results/chunk_policies`, its provenance beside it):

# %%
res_dir = Path('../results/chunk_policies')
if (res_dir / 'metrics.csv').exists():
    print((res_dir / 'metrics.csv').read_text())
    from IPython.display import Image, display
    display(Image(filename=str(res_dir / 'paths.png')))
else: print('not run yet: mac_policy_demo --out results/chunk_policies')

# %% [markdown]
# ## Implementation details
#
# 1. Noise at $u=0$, chunk at $u=1$ (Eq. 2 and the code), not Eq. 7's printed interpolation.
# 2. $v_\theta$ takes $[s, \mathbf a_u, u]$ with $u$ as a raw scalar; chunks are flattened time-major to n·d.
# 3. Flow samples are clipped to $[-1, 1]$ once, after the last Euler step (official `sample_flow_actions`).
# 4. The Gaussian policy follows the official MAC(Gau) actor: hidden blocks ending in LayerNorm, separate mean and
#    log-std heads with small (gain-0.1 Xavier) initialisation, log-std clipped to [−5, 2], tanh squashing; samples
#    are clipped to [−1, 1] as well.
# 5. Dataset chunks are clipped to ±(1 − 1e-5) (chapter 2a), which keeps $\operatorname{atanh}$ finite in the Gaussian's likelihood.

# %%
#| hide
import nbdev; nbdev.nbdev_export()
