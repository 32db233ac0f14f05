# %% [markdown]
# # The MAC agent
# > Algorithm 1: one update trains the flow and one-step policies, the chunk model, and the value and critic from fresh model rollouts; acting is rejection sampling.

# %%
#| default_exp agent

# %%
#| export
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from fastcore.basics import patch

from mac.core import ema_update_, get_device
from mac.distill import OneStepPolicy, distillation_loss
from mac.models import ChunkDynamics, ChunkReward, ChunkSuccess
from mac.policies import FlowChunkPolicy, GaussianChunkPolicy
from mac.rejection import rejection_sample
from mac.value import QNet, ValueNet, critic_loss, model_rollout, nstep_targets, value_loss

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail
import time
import numpy as np


# %% [markdown]
# ## In the paper: Algorithm 1
#
# > **Algorithm 1** Offline Model-Based RL with Action Chunks (MAC)<br>
# > **Input:** Dataset $\mathcal{D}$, rollout length $H$, action chunking size $n$, rejection sampling size $M$<br>
# > // Training loop<br>
# > **while** not converged **do**<br>
# > &nbsp;&nbsp;▷ Sample action-chunked batch from the dataset ($\mathbf{a}_t = a_{t:t+n-1}$, $\mathbf{r}_t = \sum_{i=0}^{n-1} \gamma^i r_{t+i}$)<br>
# > &nbsp;&nbsp;Sample batch $\{(s_t, \mathbf{a}_t, \mathbf{r}_t, s_{t+n})\} \sim \mathcal{D}$<br>
# > &nbsp;&nbsp;▷ Train BC policy using dataset transitions<br>
# > &nbsp;&nbsp;Update flow BC policy $\pi_\theta$ with flow-matching loss (Equation (7))<br>
# > &nbsp;&nbsp;Update one-step BC policy $\pi_\omega$ with distillation loss (Equation (8))<br>
# > &nbsp;&nbsp;▷ Train dynamics and reward model using dataset transitions<br>
# > &nbsp;&nbsp;Update dynamics model $p_\psi$ to minimize $\mathbb{E}[\|p_\psi(s_t, \mathbf{a}_t) - s_{t+n}\|_2^2]$ (Equation (5))<br>
# > &nbsp;&nbsp;Update reward model $r_\psi$ to minimize $\mathbb{E}[\|r_\psi(s_t, \mathbf{a}_t) - \mathbf{r}_t\|_2^2]$ (Equation (6))<br>
# > &nbsp;&nbsp;▷ Generate model rollouts ($\hat{s}_t = s_t$)<br>
# > &nbsp;&nbsp;**for** $k = 0, 1, \dots, H - 1$ **do**<br>
# > &nbsp;&nbsp;&nbsp;&nbsp;$\hat{\mathbf{a}}_{t+kn} \leftarrow \text{POLICY}(\hat{s}_{t+kn})$<br>
# > &nbsp;&nbsp;&nbsp;&nbsp;$\hat{s}_{t+(k+1)n}, \hat{\mathbf{r}}_{t+kn} \sim p_\psi(\cdot \mid \hat{s}_{t+kn}, \hat{\mathbf{a}}_{t+kn}), r_\psi(\cdot \mid \hat{s}_{t+kn}, \hat{\mathbf{a}}_{t+kn})$<br>
# > &nbsp;&nbsp;▷ Update value using model rollouts<br>
# > &nbsp;&nbsp;Update value $V_\varphi$ with $nH$-step targets from the rollout (Equation (10))<br>
# > &nbsp;&nbsp;▷ Learn critic for faster rejection sampling<br>
# > &nbsp;&nbsp;Update critic $Q_\varphi$ with the learned value function $V_\varphi$ (Equation (11))<br>
# > // Extract action from flow BC policy $\pi_\theta$ with rejection sampling<br>
# > **function** POLICY($s$)<br>
# > &nbsp;&nbsp;$z \sim \mathcal{N}(0, I)$<br>
# > &nbsp;&nbsp;$\hat{\mathbf{a}}^{(i)} = \pi_\omega(s, z)$<br>
# > &nbsp;&nbsp;**return** $\arg\max_{\hat{\mathbf{a}}^{(1)}, \dots, \hat{\mathbf{a}}^{(M)}} Q_\varphi(s, \hat{\mathbf{a}}^{(i)})$
#
# In our words, two things the algorithm leaves implicit. Its rejection sampling size $M$ is the N of Eq. 4 (8 in
# rollouts, 32 when acting; the text uses M for the number of imagined trajectories, Eq. 9). And it has no line for a
# target network, which the paper mentions only in passing: Eq. 3's $\bar V$ is "a target value function", the
# $\bar\varphi$ named after Eq. 10 are "exponentially averaged target parameters" (chapter 6), and Table 8 lists a
# target network update rate of 0.005. The official code keeps an EMA copy $\bar V$ of the value network, bootstraps
# Eq. 10 from it, and updates it once per step from the pre-update value weights (created in [`mac.py:437`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L437) and
# [`mac.py:451-452`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L451-L452), read by the GAE in [`mac.py:161-163`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L161-L163), and blended by
# [`mac.py:292-299`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L292-L299) from `self.network.params`, i.e. the weights held before the Adam step, when `update`
# calls it at [`mac.py:310`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L310)); we do the same.
#
# The official code runs this as **one** gradient step of the **sum** of all losses with a single Adam
# (the losses are summed at [`mac.py:289`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L289); `update`, [`mac.py:301-312`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L301-L312), takes one gradient of that
# sum and one step of the `optax.adam` built at [`mac.py:447`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L447), in [`flax_utils.py:132-159`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/flax_utils.py#L132-L159); a network
# called without explicit parameters runs on the stored ones and passes no gradient, [`flax_utils.py:90-114`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/flax_utils.py#L90-L114)). Since each loss reaches only its own network's parameters, that is the same as
# separate optimisers; what matters is that the rollout, every target and the critic's $V_\varphi(\hat s_1)$ use the
# networks as they were *before* this step, and that the EMA uses the *pre-update* value weights. We do the same.

# %% [markdown]
# ## Configuration
#
# Defaults are the paper's reward-based (single-task) values, Tables 7-8. The ablation flags select the paper's
# variants of the same agent.

# %%
#| export
@dataclass(frozen=True)
class MACConfig:
    n: int = 10                            # action chunk length
    H: int = 10                            # model calls per rollout (imagined horizon n·H env steps)
    gamma: float = 0.999                   # per-env-step discount; a chunk is discounted by γⁿ
    tau: float = 0.005                     # target value EMA rate
    lr: float = 3e-4                       # Adam, all networks
    actor_hidden: tuple = (512, 512, 512, 512)     # flow v_θ, one-step π_ω (and the Gaussian policy)
    value_hidden: tuple = (512, 512, 512, 512)     # V_φ
    dynamics_hidden: tuple = (512, 512, 512, 512)  # dynamics, reward, success and the critic Q (official code)
    flow_steps: int = 10                   # F, Euler steps of the teacher flow
    n_train: int = 8                       # rejection-sampling candidates inside rollouts
    n_test: int = 32                       # rejection-sampling candidates when acting
    rollout_batch: int = 1024              # rollouts start from the first min(B, this) batch states (official)
    policy: str = 'flow'                   # 'flow' (MAC) or 'gaussian' (the MAC(Gau) ablation)
    extraction: str = 'rejection'          # 'rejection' (MAC) or 'fql' (the MAC(FQL) ablation)
    distill: bool = True                   # False: the w/o-distillation ablation (flow sampled with one Euler step)
    fql_alpha: float = 1.0                 # MAC(FQL) distillation weight α (Table 11: 1.0 cube-single)
    learn_success: bool = True             # train the success net (official: yes, on all-zero targets single-task)

    def __post_init__(self):
        for k in ('n', 'H', 'flow_steps', 'n_train', 'n_test', 'rollout_batch'):
            if getattr(self, k) < 1: raise ValueError(f'MACConfig.{k} must be >= 1, got {getattr(self, k)}')
        if self.policy not in ('flow', 'gaussian'): raise ValueError(f"MACConfig.policy must be 'flow' or 'gaussian', got {self.policy!r}")
        if self.extraction not in ('rejection', 'fql'): raise ValueError(f"MACConfig.extraction must be 'rejection' or 'fql', got {self.extraction!r}")
        if self.policy == 'gaussian' and self.extraction == 'fql': raise ValueError("MAC(FQL) needs the flow policy: use policy='flow'")
        if self.extraction == 'fql' and not self.distill: raise ValueError('MAC(FQL) trains the one-step policy: keep distill=True')
        if not 0 < self.gamma <= 1 or not 0 <= self.tau <= 1: raise ValueError('gamma must be in (0, 1] and tau in [0, 1]')


# %%
test_eq(MACConfig().n * MACConfig().H, 100)
test_fail(lambda: MACConfig(policy='diffusion'), contains="'flow' or 'gaussian'")
test_fail(lambda: MACConfig(n=0), contains='MACConfig.n must be >= 1')


# %% [markdown]
# ## The networks
#
# Every network is a separate chapter-0 MLP (no sharing), as in the official code. The critic uses the dynamics
# widths (a quirk of the official code, [`mac.py:407-411`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L407-L411)). The target value network starts as a copy of $V_\varphi$.

# %%
#| export
class MACAgent(nn.Module):
    "MAC: flow BC + one-step policy + chunk dynamics/reward/success + V, target V̄ and Q; `update` is Algorithm 1."
    def __init__(self, obs_dim: int, action_dim: int, cfg: MACConfig = MACConfig(), device=None, goal_dim: int = 0):
        super().__init__()
        self.cfg, self.obs_dim, self.action_dim, self.goal_dim = cfg, obs_dim, action_dim, goal_dim
        n, chunk, x = cfg.n, cfg.n * action_dim, obs_dim + goal_dim   # x: what the goal-conditioned nets read, [s, g]
        if cfg.policy == 'flow':
            self.flow = FlowChunkPolicy(x, action_dim, n, cfg.actor_hidden)
            if cfg.distill: self.onestep = OneStepPolicy(x, action_dim, n, cfg.actor_hidden)
        else: self.gauss = GaussianChunkPolicy(x, action_dim, n, cfg.actor_hidden)
        self.dynamics = ChunkDynamics(obs_dim, action_dim, n, cfg.dynamics_hidden)   # the world does not depend on the goal
        self.reward = ChunkReward(x, action_dim, n, cfg.dynamics_hidden)
        self.success = ChunkSuccess(obs_dim, action_dim, n, goal_dim, cfg.dynamics_hidden)
        self.value = ValueNet(x, cfg.value_hidden)
        self.critic = QNet(x, chunk, cfg.dynamics_hidden)
        self.target_value = copy.deepcopy(self.value).requires_grad_(False)
        self.to(get_device(device))
        self.opt = torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=cfg.lr,
                                    capturable=self.device.type == 'cuda')

    @property
    def device(self): return next(self.parameters()).device

    def cond(self, obs, goal=None):
        "[s, g], the input of every goal-conditioned net; a goal (B, G) is broadcast over leading rollout axes of obs (…, B, S)."
        if (goal is None) != (self.goal_dim == 0):
            raise ValueError(f'this agent is goal-conditioned: pass a goal of size {self.goal_dim}' if self.goal_dim else
                             'this agent is reward-based (goal_dim=0): it takes no goal')
        if goal is None: return obs
        if goal.shape[-1] != self.goal_dim: raise ValueError(f'goal has size {goal.shape[-1]}, this agent expects {self.goal_dim}')
        return torch.cat([obs, goal.expand(*obs.shape[:-1], self.goal_dim)], -1)


# %% [markdown]
# ## Sampling chunks
#
# The behaviour sampler depends on the variant: MAC uses the one-step policy $\pi_\omega$ (one call per chunk); the
# w/o-distillation ablation uses the flow's own field with one Euler step; MAC(Gau) samples its Gaussian. The acting
# policy is rejection sampling over those candidates with the online critic (MAC(FQL): the one-step policy alone).
# It is the method `acting_policy`, so that it is not confused with the config field `MACConfig.policy`, which names
# the kind of behaviour policy ('flow' or 'gaussian'). The methods are defined one cell at a time and attached to
# `MACAgent` with fastcore's `@patch` (nbdev's own style: they stay methods, not module-level functions).

# %%
#| export
@patch
@torch.no_grad()
def sample_chunks(self: MACAgent, x, N: int, generator=None):
    "N behaviour chunks (B, N, n·d), clipped to [-1, 1], for the nets' input x = [s, g] (s alone when reward-based)."
    c = self.cfg
    if c.policy == 'gaussian': return self.gauss.sample(x, N, generator=generator)
    if c.distill: return self.onestep.sample(x, N, generator=generator)
    return self.flow.sample(x, N, steps=1, generator=generator)

@patch
def behaviour_sample(self: MACAgent, obs, N: int, generator=None, goal=None):
    "N behaviour chunks per state (B, N, n·d), clipped to [-1, 1]."
    return self.sample_chunks(self.cond(obs, goal), N, generator)

@patch
@torch.no_grad()
def acting_policy(self: MACAgent, obs, N: int, generator=None, goal=None):
    "The acting policy: rejection sampling over N behaviour chunks with Q (MAC(FQL): one π_ω sample). (B, n·d)."
    x = self.cond(obs, goal)
    if self.cfg.extraction == 'fql': return self.onestep.sample(x, 1, generator=generator)[:, 0]
    return rejection_sample(lambda o, k: self.sample_chunks(o, k, generator), self.critic, x, N)[0]

@patch
@torch.no_grad()
def act(self: MACAgent, obs, generator=None, goal=None):
    "Test-time chunks (B, n·d) for normalised observations (B, S) (and goals (B, G)): N_test candidates, argmax Q."
    return self.acting_policy(obs, self.cfg.n_test, generator, goal)


# %% [markdown]
# ## The losses, one short method each
#
# A batch holds `observations` (B, S), `actions` (B, n·d), `rewards` (B,), `next_observations` (B, S) and `masks` (B,)
# (chapter 2a's sampler). The success net's target is $1 - m$ (all zeros in single-task data). A goal-conditioned batch
# (chapter 9b) adds `value_goals` and `actor_goals` (B, G); `self.cond` puts them beside the state (section "Goals").

# %%
#| export
@patch
def model_losses(self: MACAgent, b) -> dict:
    "Eqs. 5-6 and the success BCE on dataset chunks (reward and success conditioned on the value goals, if any)."
    s, a, g = b['observations'], b['actions'], b.get('value_goals')
    out = dict(dynamics=self.dynamics.loss(s, a, b['next_observations']),
               reward=self.reward.loss(self.cond(s, g), a, b['rewards']))
    if self.cfg.learn_success: out['success'] = self.success.loss(s, a, 1 - b['masks'], g)
    return out

@patch
def bc_losses(self: MACAgent, b, generator=None) -> dict:
    "Flow BC (Eq. 7) + distillation (Eq. 8), or the Gaussian's NLL, on dataset chunks (conditioned on the actor goals, if any)."
    c, s, a = self.cfg, self.cond(b['observations'], b.get('actor_goals')), b['actions']
    if c.policy == 'gaussian': return dict(bc=self.gauss.loss(s, a))
    out = dict(flow=self.flow.loss(s, a, generator=generator))
    if c.distill and c.extraction == 'rejection': out['distill'] = distillation_loss(self.onestep, self.flow, s, steps=c.flow_steps, generator=generator)
    return out


# %% [markdown]
# Eq. 9, the rollout: from the given states, the acting policy (rejection sampling over N candidates, N_train by
# default; MAC(FQL): one π_ω sample) picks each chunk and the chunk model predicts the next state, the reward and,
# through the success net, the mask; nothing in it takes gradients.

# %%
#| export
@patch
@torch.no_grad()
def rollout(self: MACAgent, obs0, generator=None, N: int | None = None, H: int | None = None, goal=None) -> dict:
    "Eq. 9: H steps of the policy (N candidates; defaults N_train, H) in the chunk model from obs0 (B, S), no gradients."
    c = self.cfg
    def outcome(s, a):   # (reward, mask): mask = 1 − predicted success 1(σ(f) > 0.5); the goal is held for the whole rollout
        r_success, success = self.success.predict(s, a, goal)
        return (r_success if self.goal_dim else self.reward(s, a)), 1 - success   # GC: −1 per chunk until success
    ro = model_rollout(lambda s: self.acting_policy(s, N or c.n_train, generator, goal), self.dynamics, outcome, obs0, H or c.H)
    return ro | dict(goals=goal)


# %% [markdown]
# Eqs. 10-11 on that rollout: the value regresses on the nH-step targets bootstrapped by the target network V̄, the
# critic on the one-chunk target through the online V (chapter 6):

# %%
#| export
@patch
def value_losses(self: MACAgent, ro) -> dict:
    "Eq. 10 with the target network's bootstrap V̄(ŝ_H), and Eq. 11 with the online V(ŝ_1)."
    gn, x = self.cfg.gamma ** self.cfg.n, self.cond(ro['states'], ro.get('goals'))
    with torch.no_grad(): G = nstep_targets(ro['rewards'], ro['masks'], self.target_value(x[-1]), gn)
    return dict(value=value_loss(self.value, x, G),
                critic=critic_loss(self.critic, self.value, x[0], ro['actions'][0], ro['rewards'][0], ro['masks'][0], x[1], gn),
                v_mean=G.mean().detach())


# %% [markdown]
# The MAC(FQL) ablation replaces rejection sampling by FQL's policy extraction: the one-step policy is pulled towards
# the flow's chunks (distillation) and up the critic's Q, through a frozen copy of the critic so that only the policy
# moves:

# %%
#| export
@patch
def fql_actor_loss(self: MACAgent, ro, generator=None) -> dict:
    "MAC(FQL): on all rollout states, α·distillation − Q(ŝ, clip π_ω(ŝ, z)) / mean|Q|, through a frozen critic."
    s = self.cond(ro['states'][:-1], ro.get('goals')).reshape(-1, self.obs_dim + self.goal_dim)
    z = torch.randn((s.shape[0], self.cfg.n * self.action_dim), generator=generator, device=s.device)
    with torch.no_grad(): target = self.flow(s, z, self.cfg.flow_steps)
    a = self.onestep(s, z)
    frozen = {k: v.detach() for k, v in self.critic.named_parameters()}
    q = functional_call(self.critic, frozen, (s, a.clamp(-1, 1)))
    return dict(distill=self.cfg.fql_alpha * ((a - target) ** 2).mean(), actor_q=-(q / q.abs().mean().detach()).mean())


# %% [markdown]
# ## One update
#
# Everything is computed with the current (pre-update) weights, the summed loss takes one backward pass and one
# Adam step, and the target EMA uses the pre-update value weights (it runs before the step). The update returns
# its losses as tensors: no `.item()` inside, no branch on tensor values, fixed shapes, so it can be compiled:
# `agent.update(batch, g, losses_fn=torch.compile(agent.losses))` runs the same step with the compiled forward and
# backward (chapter 10's `compile` option, chapter 11's benchmark).

# %%
#| export
@patch
def losses(self: MACAgent, batch, generator=None, values: bool = True) -> dict:
    "Every loss of Algorithm 1 for one batch, with the networks as they are now (values=False: models and policies only)."
    out = {**self.model_losses(batch), **self.bc_losses(batch, generator)}
    if not values: return out
    rb, g = self.cfg.rollout_batch, batch.get('value_goals')
    ro = self.rollout(batch['observations'][:rb], generator, goal=None if g is None else g[:rb])   # GC: rollouts chase the value goals
    out.update(self.value_losses(ro))
    if self.cfg.extraction == 'fql': out.update(self.fql_actor_loss(ro, generator))
    return out


# %% [markdown]
# `update` sums the losses, takes one backward pass and one Adam step, and moves the target value network first:

# %%
#| export
@patch
def update(self: MACAgent, batch, generator=None, losses_fn=None, values: bool = True) -> dict:
    "One gradient step of the summed losses (official: one jax.grad, one Adam step); EMA with pre-update weights."
    out = (losses_fn or self.losses)(batch, generator, values)  # losses_fn: e.g. torch.compile(agent.losses), same math
    total = sum(v for k, v in out.items() if k != 'v_mean')
    self.opt.zero_grad(set_to_none=True)
    total.backward()
    ema_update_(self.target_value, self.value, self.cfg.tau)   # θ̄ ← τ θ_old + (1 − τ) θ̄, before the step
    self.opt.step()
    return {k: v.detach() for k, v in out.items()} | {'total': total.detach()}


# %% [markdown]
# `bf16` wraps a `losses_fn` so that its forward passes run under bfloat16 autocast (chapter 11 measures when that pays;
# on a CPU without bfloat16 instructions it does not):

# %%
#| export
def bf16(losses_fn):
    "`losses_fn` with its forward passes under bfloat16 autocast; weights, gradients and Adam stay float32 (a `losses_fn` for `update`)."
    @functools.wraps(losses_fn)
    def run(batch, generator=None, values: bool = True):
        with torch.autocast(batch['observations'].device.type, dtype=torch.bfloat16):
            return {k: v.float() for k, v in losses_fn(batch, generator, values).items()}
    return run


# %% [markdown]
# ## Checks
#
# On a tiny agent and a random batch: one update changes every trained network, the target moves exactly by the EMA
# formula applied to the pre-update weights, losses are finite, each loss reaches only its own network, a zero
# learning rate changes nothing, the ablation flags give the right shapes, and the agent's rollout equals a
# hand-built two-step one from the same noise, its rewards and masks included.

# %%
tiny = dict(n=3, H=2, actor_hidden=(16, 16), value_hidden=(16, 16), dynamics_hidden=(16, 16), n_train=4, n_test=6, flow_steps=3)
S, d, B = 5, 2, 8
def batch(g):
    return dict(observations=torch.randn(B, S, generator=g), actions=torch.rand(B, 3 * d, generator=g) * 2 - 1,
                rewards=-torch.rand(B, generator=g), next_observations=torch.randn(B, S, generator=g), masks=torch.ones(B))
torch.manual_seed(0)
agent = MACAgent(S, d, MACConfig(**tiny), device='cpu')
# nudge the target away from the value net so the EMA check is not trivial
with torch.no_grad():
    for p in agent.target_value.parameters(): p.add_(0.1)
before = {k: v.clone() for k, v in agent.state_dict().items()}
out = agent.update(batch(torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
assert all(torch.isfinite(v) for v in out.values()), out
after = agent.state_dict()
for name in ('flow', 'onestep', 'dynamics', 'reward', 'success', 'value', 'critic'):
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(name + '.')), f'{name} did not change'
for k in before:
    if k.startswith('target_value.'):
        test_close(after[k], agent.cfg.tau * before['value.' + k[len('target_value.'):]] + (1 - agent.cfg.tau) * before[k], eps=1e-6)

# %%
agent = MACAgent(S, d, MACConfig(**tiny), device='cpu')
ls = agent.losses(batch(torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
owner = {'dynamics': 'dynamics', 'reward': 'reward', 'success': 'success', 'flow': 'flow', 'distill': 'onestep', 'value': 'value', 'critic': 'critic'}
for loss_name, module in owner.items():
    grads = torch.autograd.grad(ls[loss_name], [p for p in agent.parameters() if p.requires_grad], retain_graph=True, allow_unused=True)
    touched = {n.split('.')[0] for (n, p), gr in zip([(n, p) for n, p in agent.named_parameters() if p.requires_grad], grads) if gr is not None and gr.abs().sum() > 0}
    test_eq(touched, {module})

# %%
agent0 = MACAgent(S, d, MACConfig(**tiny, lr=0.0), device='cpu')
sd0 = {k: v.clone() for k, v in agent0.state_dict().items()}
agent0.update(batch(torch.Generator().manual_seed(0)))
assert all(torch.equal(sd0[k], v) for k, v in agent0.state_dict().items())  # lr 0 (and V̄ = V at start): nothing moves

# %% [markdown]
# `bf16(agent.losses)` is the same update with every matrix product in bfloat16 (fast only on CPUs with avx512_bf16 or AMX,
# or on a GPU; chapter 11 measured a whole `cpu`-preset update 9.8× slower than float32 on an AVX2-only CPU, one thread). On this tiny agent, without rollouts, the losses move by a few percent at most (checked below); chapter 11 measures a
# trained agent, where some losses move far more.

# %%
agent = MACAgent(S, d, MACConfig(**tiny), device='cpu')
b0, l32 = batch(torch.Generator().manual_seed(0)), None
l32 = agent.losses(b0, torch.Generator().manual_seed(1), values=False)                  # no rollouts: the same noise, the same chunks
l16 = bf16(agent.losses)(b0, torch.Generator().manual_seed(1), values=False)
assert all(l16[k].dtype == torch.float32 for k in l16) and any(l16[k] != l32[k] for k in l32)   # computed differently …
for k in l32: test_close(l16[k], l32[k], eps=0.03 * abs(l32[k].item()) + 1e-3)                    # … and close
o = agent.update(b0, torch.Generator().manual_seed(1), bf16(agent.losses)); assert all(torch.isfinite(v) for v in o.values())

# %%
for flags in (dict(), dict(policy='gaussian'), dict(extraction='fql'), dict(distill=False), dict(n=1)):
    cfg = MACConfig(**(tiny | flags)); ag = MACAgent(S, d, cfg, device='cpu')
    bt = batch(torch.Generator().manual_seed(0)) | dict(actions=torch.rand(B, cfg.n * d) * 2 - 1)
    o = ag.update(bt); assert all(torch.isfinite(v) for v in o.values()), (flags, o)
    test_eq(ag.act(torch.randn(4, S)).shape, (4, cfg.n * d))
    test_eq(ag.behaviour_sample(torch.randn(4, S), 7).shape, (4, 7, cfg.n * d))
test_eq(set(MACAgent(S, d, MACConfig(**tiny, extraction='fql'), device='cpu').update(batch(torch.Generator().manual_seed(0)))), {'dynamics', 'reward', 'success', 'flow', 'value', 'critic', 'v_mean', 'distill', 'actor_q', 'total'})

# %%
agent = MACAgent(S, d, MACConfig(**tiny), device='cpu')
s0 = torch.randn(B, S)
ro = agent.rollout(s0, torch.Generator().manual_seed(7))
g = torch.Generator().manual_seed(7)
a0 = agent.acting_policy(s0, 4, g); s1 = agent.dynamics(s0, a0); a1 = agent.acting_policy(s1, 4, g); s2 = agent.dynamics(s1, a1)
with torch.no_grad():
    test_close(ro['states'], torch.stack([s0, s1, s2])); test_close(ro['actions'], torch.stack([a0, a1]))
    test_close(ro['rewards'], torch.stack([agent.reward(s0, a0), agent.reward(s1, a1)]))
    test_eq(ro['masks'], torch.stack([(torch.sigmoid(agent.success(s, a)) <= 0.5).float() for s, a in ((s0, a0), (s1, a1))]))  # m = 1 − 1(σ(f) > 0.5)

# %% [markdown]
# ### The value targets against a hand computation
#
# At initialisation $\bar V = V$, so the checks above cannot tell which of the two `value_losses` bootstraps from, or which
# one the critic's target uses. So make them different, known functions. With `value_hidden=()` and
# `dynamics_hidden=()` each network is one linear map, which we overwrite: $V(s) = 2 s_0$, $\bar V(s) = -3 s_0$,
# $Q(s, \mathbf a) = 0.5 s_0 + a_0$. On a rollout written by hand (random states and rewards, masks with terminations), the
# expected targets are Eq. 10's closed form with termination (official GAE, [`mac.py:169-180`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L169-L180), with λ = 1, [`mac.py:476`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L476)), summed term by
# term rather than by chapter 6's recursion:
#
# $$G_k = \sum_{j=k}^{H-1}\Gamma^{j-k}\Big(\prod_{i=k}^{j-1} m_i\Big)\hat r_j + \Gamma^{H-k}\Big(\prod_{i=k}^{H-1} m_i\Big)\bar V(\hat s_H),\qquad \Gamma = \gamma^n.$$
#
# The value loss is the mean of $(V(\hat s_k) - G_k)^2$ over all H·B pairs, with the **online** V regressed; the critic's
# target is $\hat r_0 + m_0\Gamma V(\hat s_1)$ with the **online** V (Eq. 11; official [`mac.py:220-224`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L220-L224)).

# %%
lin = MACConfig(**(tiny | dict(H=4, gamma=0.9, value_hidden=(), dynamics_hidden=())))
H, Bh, Gam = lin.H, 5, lin.gamma ** lin.n
ag = MACAgent(S, d, lin, device='cpu')
with torch.no_grad():
    for layer, w in ((ag.value.net[0], 2.0), (ag.target_value.net[0], -3.0), (ag.critic.net[0], 0.5)):
        layer.weight.zero_(); layer.bias.zero_(); layer.weight[0, 0] = w
    ag.critic.net[0].weight[0, S] = 1.0                                           # Q's input is [s, a]: a_0 sits at index S
V_h, Vbar_h, Q_h = (lambda s: 2.0 * s[..., 0]), (lambda s: -3.0 * s[..., 0]), (lambda s, a: 0.5 * s[..., 0] + a[..., 0])
g = torch.Generator().manual_seed(3)
ro_h = dict(states=torch.randn(H + 1, Bh, S, generator=g), actions=torch.rand(H, Bh, lin.n * d, generator=g) * 2 - 1,
            rewards=-torch.rand(H, Bh, generator=g), masks=(torch.rand(H, Bh, generator=g) > 0.3).float())
st, r, m = ro_h['states'], ro_h['rewards'], ro_h['masks']
assert 0 < m.mean() < 1                                                           # some rollouts terminate
G_h = torch.zeros(H, Bh)
for k in range(H):
    alive = torch.ones(Bh)                                                        # Π_{i=k}^{j-1} m_i
    for j in range(k, H): G_h[k] += Gam ** (j - k) * alive * r[j]; alive = alive * m[j]
    G_h[k] += Gam ** (H - k) * alive * Vbar_h(st[H])
value_h = sum(((V_h(st[k]) - G_h[k]) ** 2).sum() for k in range(H)) / (H * Bh)
critic_h = ((Q_h(st[0], ro_h['actions'][0]) - (r[0] + m[0] * Gam * V_h(st[1]))) ** 2).mean()
out = ag.value_losses(ro_h)
test_close(out['value'], value_h, eps=1e-4); test_close(out['critic'], critic_h, eps=1e-4); test_close(out['v_mean'], G_h.mean(), eps=1e-5)

# %% [markdown]
# The value loss's gradient reaches the online V's weights as the hand derivative
# $\frac{2}{HB}\sum_{k,b}(V(\hat s_k) - G_k)\,\hat s_k$ says ($G_k$ a constant). And inside `update`, with this hand-built rollout in
# place of the agent's own, the reported losses are the same numbers (taken with the pre-update networks), and the step
# moves V's weights against that gradient: Adam's first step is $-\mathrm{lr}\cdot g/(|g| + \epsilon) \approx -\mathrm{lr}\,\mathrm{sign}(g)$.

# %%
grad_h = sum(2 * ((V_h(st[k]) - G_h[k])[:, None] * st[k]).sum(0) for k in range(H)) / (H * Bh)
test_close(torch.autograd.grad(out['value'], ag.value.net[0].weight)[0][0], grad_h, eps=1e-4)
ag.rollout = lambda obs0, generator=None, goal=None: ro_h                                   # this agent imagines the hand-built rollout
w0 = ag.value.net[0].weight.detach().clone()
o = ag.update(batch(torch.Generator().manual_seed(0)))
test_close(o['value'], value_h, eps=1e-4); test_close(o['critic'], critic_h, eps=1e-4)
test_close(ag.value.net[0].weight.detach()[0] - w0[0], -lin.lr * grad_h.sign(), eps=1e-6)

# %% [markdown]
# ## Goals: one agent for both settings
#
# The paper's headline experiments are goal-conditioned: every episode names a goal $g$ and succeeds when it is reached.
# The paper's only words on how MAC changes there are about the reward model (Appendix A.1):
#
# > For large-scale benchmarks, we parameterize the reward model and the terminal model using a single success prediction network $f_\psi(s_t, a_t)$, where termination is calculated as $\mathbb{1}(f_\psi(s_t, a_t) > 0.5)$ and reward is calculated as $\mathbb{1}(f_\psi(s_t, a_t) > 0.5) - 1$.
#
# The official code fills in the rest (paraphrased from `official-code-facts.md` §2-3): every network except the dynamics
# reads the goal beside the state, $[s, g]$: the flow and one-step policies, the value, its target and the critic, and
# the success net is $f_\psi(s, g, \mathbf a)$ (the paper's $f_\psi(s_t, a_t)$ leaves the goal out; it cannot predict
# success without one). The dynamics $p_\psi(s, \mathbf a)$ stays goal-free: the world does not depend on what we want.
# A rollout holds its goal fixed, and its reward is $\hat r_k = \mathbb 1(\sigma(f_\psi) > 0.5) - 1$, one $-1$ per chunk
# until predicted success, where the mask $m_k = 1 - \text{success}$ cuts the return. The policies learn from *actor
# goals* and the values from *value goals*, sampled differently from the dataset (chapter 9b).
#
# So `MACAgent(obs_dim, action_dim, cfg, goal_dim=G)` is the same agent with wider inputs: `cond(s, g)` builds $[s, g]$ and
# every method takes an optional goal. With `goal_dim=0` (the default) nothing changes: the reward-based agent is
# exactly the one above (when goals were added, its updates were compared once, bit for bit, with the version before). The checks:
# a goal-conditioned update trains every net and each loss reaches only its own; a rollout's rewards and masks come
# from the success net with the rollout's goal, and equal a hand-built rollout; goals are required where they are
# expected and refused where they are not.

# %%
G = 3
def gc_batch(g):
    b = batch(g); succ = (torch.rand(B, generator=g) < 0.3).float()
    return b | dict(value_goals=torch.randn(B, G, generator=g), actor_goals=torch.randn(B, G, generator=g), rewards=succ - 1, masks=1 - succ)
gc = MACAgent(S, d, MACConfig(**tiny), device='cpu', goal_dim=G)
before = {k: v.clone() for k, v in gc.state_dict().items()}
ls = gc.losses(gc_batch(torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
for loss_name, module in owner.items():
    grads = torch.autograd.grad(ls[loss_name], [p for p in gc.parameters() if p.requires_grad], retain_graph=True, allow_unused=True)
    touched = {n.split('.')[0] for (n, p), gr in zip([(n, p) for n, p in gc.named_parameters() if p.requires_grad], grads) if gr is not None and gr.abs().sum() > 0}
    test_eq(touched, {module})
gc.update(gc_batch(torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
for name in owner.values(): assert any(not torch.equal(before[k], v) for k, v in gc.state_dict().items() if k.startswith(name + '.')), name
# which goal each loss reads: flip one kind of goal, same noise, and see which losses move
b0 = gc_batch(torch.Generator().manual_seed(0))
L = lambda b: gc.losses(b, torch.Generator().manual_seed(4))
base, va, ac = L(b0), L(b0 | dict(value_goals=-b0['value_goals'])), L(b0 | dict(actor_goals=-b0['actor_goals']))
moved = lambda o: {k for k in base if k not in ('v_mean',) and not torch.isclose(base[k], o[k])}
test_eq(moved(ac), {'flow', 'distill'})                                           # the policies read the actor goals …
assert {'reward', 'success', 'value', 'critic'} <= moved(va) and not {'flow', 'distill', 'dynamics'} & moved(va)   # … the rest the value goals

# %%
s0, goal = torch.randn(B, S), torch.randn(B, G)
ro = gc.rollout(s0, torch.Generator().manual_seed(7), goal=goal)
g = torch.Generator().manual_seed(7)
a0 = gc.acting_policy(s0, 4, g, goal); s1 = gc.dynamics(s0, a0); a1 = gc.acting_policy(s1, 4, g, goal); s2 = gc.dynamics(s1, a1)
with torch.no_grad():
    test_close(ro['states'], torch.stack([s0, s1, s2])); test_close(ro['actions'], torch.stack([a0, a1]))
    succ = torch.stack([(torch.sigmoid(gc.success(s, a, goal)) > 0.5).float() for s, a in ((s0, a0), (s1, a1))])
    test_eq(ro['rewards'], succ - 1); test_eq(ro['masks'], 1 - succ)             # −1 per chunk until predicted success
    test_eq(ro['goals'], goal)
    gc.success.net[-1].bias.fill_(50.0)                                         # a success net that always says "reached"
    ro = gc.rollout(s0, goal=goal); test_eq(ro['rewards'], torch.zeros(2, B)); test_eq(ro['masks'], torch.zeros(2, B))
test_fail(lambda: gc.act(s0), contains='pass a goal of size 3')
test_fail(lambda: gc.act(s0, goal=torch.randn(B, 2)), contains='goal has size 2')
test_fail(lambda: agent.act(s0, goal=goal), contains='reward-based (goal_dim=0)')

# %% [markdown]
# ## A toy run: MAC against its own behaviour policy
#
# The checks above test the mechanics of one update; none shows the assembled agent doing what it is for. Here is an
# offline problem small enough to train in this notebook on the CPU (about 25 s on a busy 2-core machine) where it can.
#
# **The environment.** A point mass on the plane: $s \in [-1, 1]^2$, $a \in [-1, 1]^2$, $s' = \mathrm{clip}(s + 0.1a, -1, 1)$,
# so one step moves at most 0.1 per coordinate. Episodes start near $(-0.6, -0.6)$ (uniform $\pm 0.05$ per coordinate), last
# 50 steps and end at the first step that lands in the goal disk, radius 0.15 around $(0.6, 0.6)$; the straight path
# needs about 11 steps. The reward is OGBench's single-task one, $r = \text{success} - 1$ (0 on reaching the goal, −1
# otherwise), with mask $1 - \text{success}$.
#
# **The data.** 400 episodes of 50 steps from uniform random starts, made by a poor behaviour policy: unit speed in a
# uniformly random heading, redrawn with probability 0.2 at each step, i.e. straight runs of about 5 steps in random
# directions. It covers the whole square, the goal included, but it goes nowhere in particular: from the start region it
# rarely reaches the goal (measured below). Stored in OGBench's compact layout: 51 rows per episode, the last with
# `valids` = 0, and row $t$'s reward and mask say whether $s_{t+1}$ is in the goal disk. `terminals=True` ends a chunk at
# its first success, so chunk masks are 0 there and the success net has something to learn (`learn_success` is on).
#
# **What we expect, and why.** The one-step policy $\pi_\omega$ (distilled from the flow BC policy) clones the data's
# chunks: 5-step pieces of motion in random directions. Acting with $N_\text{test} = 1$ is that clone alone. With
# $N_\text{test} = 32$ the agent draws 32 such chunks and keeps the one its critic scores best; $Q$ scores a whole chunk by
# its reward plus $\gamma^n V(s_{t+n})$, and $V$ is learned from H-chunk rollouts of this same rejection-sampling policy in
# the learned chunk model. If $V$ rises towards the goal, the chosen chunk is the one heading there, and the path is
# stitched from in-distribution pieces. So success should go from rare to frequent.
#
# **Settings**, fixed before the first run and not tuned after it: n = 5, H = 3 (15 imagined steps), γ = 0.95, hidden
# (64, 64) for every network, F = 5 flow steps, N_train = 8, N_test = 32, batch 128, 800 updates with the agent's own
# `update` (all its losses). Besides the smaller sizes, lr = 1e-3 and τ = 0.01 (paper: 3e-4, 0.005) suit the short run. Seeds:
# data `np.random.default_rng(0)`, initialisation `torch.manual_seed(0)`, training generator 0; evaluation start states
# and sampling seed 1, the same for every policy compared. The demo runs on one CPU thread (restored afterwards), so on
# a given machine and torch build it repeats exactly.

# %%
import matplotlib.pyplot as plt
from mac.batches import ChunkDataset, ChunkReturn, ObsNormalizer

GOAL, RADIUS, T = np.array([0.6, 0.6]), 0.15, 50                     # goal disk; episode length (env steps)
def env_step(s, a): return np.clip(s + 0.1 * np.clip(a, -1, 1), -1, 1)
def solved(s): return np.linalg.norm(s - GOAL, axis=-1) <= RADIUS
def start_states(E, rng): return np.array([-0.6, -0.6]) + rng.uniform(-0.05, 0.05, (E, 2))

def behaviour_action(theta, rng, p_turn=0.2):
    "The behaviour policy: unit speed along heading θ, redrawn uniformly with probability p_turn each step."
    theta = np.where(rng.random(len(theta)) < p_turn, rng.uniform(0, 2 * np.pi, len(theta)), theta)
    return np.stack([np.cos(theta), np.sin(theta)], -1), theta

def behaviour_dataset(E, rng):
    "E episodes of T steps from uniform starts, in OGBench's compact layout (T + 1 rows each, valids 0 on the last)."
    s, theta = rng.uniform(-1, 1, (E, 2)), rng.uniform(0, 2 * np.pi, E)
    obs, acts = [s], []
    for _ in range(T):
        a, theta = behaviour_action(theta, rng); s = env_step(s, a); acts.append(a); obs.append(s)
    acts.append(np.zeros_like(a))                                        # the last row's action is never used
    obs, acts = np.stack(obs, 1), np.stack(acts, 1)                      # (E, T+1, 2)
    succ = np.zeros((E, T + 1), np.float32); succ[:, :-1] = solved(obs[:, 1:])   # row t: is s_{t+1} in the goal disk?
    valids = np.ones((E, T + 1), np.float32); valids[:, -1] = 0
    flat = lambda x: x.reshape(E * (T + 1), *x.shape[2:]).astype(np.float32)
    return dict(observations=flat(obs), actions=flat(acts), valids=flat(valids), rewards=flat(succ - 1), masks=flat(1 - succ))

D = behaviour_dataset(400, np.random.default_rng(0))
print(f"{len(D['observations'])} rows, {int((D['masks'] == 0).sum())} of them step into the goal disk")

# %%
threads = torch.get_num_threads(); torch.set_num_threads(1)
toy_cfg = MACConfig(n=5, H=3, gamma=0.95, lr=1e-3, tau=0.01, flow_steps=5, n_train=8, n_test=32,
                    actor_hidden=(64, 64), value_hidden=(64, 64), dynamics_hidden=(64, 64))
norm = ObsNormalizer.from_data(D['observations'])
toy_data = ChunkDataset(D['observations'], D['actions'], D['valids'], D['rewards'], D['masks'],
                        ret=ChunkReturn(toy_cfg.n, toy_cfg.gamma, terminals=True), normalizer=norm, device='cpu')
torch.manual_seed(0)
toy = MACAgent(2, 2, toy_cfg, device='cpu')
g = torch.Generator().manual_seed(0)
t0 = time.perf_counter()
for _ in range(800): log = toy.update(toy_data.sample(128, g), g)
print(f'800 updates in {time.perf_counter() - t0:.1f} s; last losses', {k: round(v.item(), 3) for k, v in log.items()})


# %% [markdown]
# Acting: each policy emits a chunk, which runs open loop for n = 5 steps (stopping at success), then the next chunk is
# chosen from the new state; 10 chunks make the 50-step episode. `toy.acting_policy(obs, N)` is what `act` runs with
# N = `n_test`. Besides the agent with N = 1 and N = 32 we run the data-generating policy itself from the same starts.

# %%
def run_episodes(choose, starts, seed):
    "Chunks from choose(s, rng, g) (E, n, 2), run in the true environment from starts (E, 2). Success (E,), paths (E, T+1, 2)."
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    s, done, path = starts.copy(), np.zeros(len(starts), bool), [starts.copy()]
    for _ in range(T // toy_cfg.n):
        chunk = choose(s, rng, gen)
        for j in range(toy_cfg.n):
            s = np.where(done[:, None], s, env_step(s, chunk[:, j])); done |= solved(s); path.append(s.copy())
    return done, np.stack(path, 1)

def agent_chooser(N):
    "N one-step-policy chunks per state, the one Q scores best (N = 1: the learned behaviour policy alone)."
    return lambda s, rng, gen: toy.acting_policy(norm(torch.as_tensor(s, dtype=torch.float32)), N, gen).reshape(len(s), toy_cfg.n, 2).numpy()

def data_chooser():
    "The policy that made the data, its heading carried from chunk to chunk."
    theta = None
    def choose(s, rng, gen):
        nonlocal theta
        if theta is None: theta = rng.uniform(0, 2 * np.pi, len(s))
        chunk = []
        for _ in range(toy_cfg.n): a, theta = behaviour_action(theta, rng); chunk.append(a)
        return np.stack(chunk, 1)
    return choose

E = 100
starts = start_states(E, np.random.default_rng(1))
toy_results = {name: run_episodes(choose, starts, seed=1) for name, choose in
               {'data policy': data_chooser(), 'N_test = 1': agent_chooser(1), 'N_test = 32': agent_chooser(32)}.items()}
torch.set_num_threads(threads)
for name, (succ, _) in toy_results.items(): print(f'{name:12s} reaches the goal in {int(succ.sum())}/{E} episodes')
succ_behaviour, succ_mac = toy_results['N_test = 1'][0].mean(), toy_results['N_test = 32'][0].mean()

# %%
fig, axs = plt.subplots(1, 2, figsize=(7, 3.5), dpi=80, sharey=True)
for ax, name in zip(axs, ('N_test = 1', 'N_test = 32')):
    succ, path = toy_results[name]
    for p in path[:12]: ax.plot(*p.T, lw=0.8)
    ax.add_patch(plt.Circle(GOAL, RADIUS, color='C2', alpha=0.3)); ax.plot(-0.6, -0.6, 'k*')
    ax.set(xlim=(-1, 1), ylim=(-1, 1), aspect='equal', title=f'{name}: {int(succ.sum())}/{E} reach the goal')
axs[0].set_ylabel('12 of the 100 episodes (★ start, green: goal)', fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# The assertion: rejection sampling with the learned Q must raise the success rate by at least 0.3 over the learned
# behaviour policy alone, from the same 100 start states. On our machine the gap is far larger (see the reading below), and
# with 100 episodes per arm the binomial standard error of each rate is at most 0.05, so 0.3 leaves room for another
# CPU or torch build to take a different numerical path. It fails when Q does not do the choosing (with a zeroed critic,
# N = 32 keeps the first candidate, a plain behaviour sample) or when the value and critic have not learned where the goal is.

# %%
assert succ_mac >= succ_behaviour + 0.3, (succ_mac, succ_behaviour)

# %% [markdown]
# **Reading.** On our machine (one thread, the seeds above) the agent with $N_\text{test} = 32$ reaches the goal in
# 98 of 100 episodes; the same agent with $N_\text{test} = 1$ reaches it in none, and the policy that made the data in 6.
# The learned behaviour policy does worse than the data's; a likely reason (not tested here) is that its input is only the
# position, so it cannot know the current heading and draws a fresh chunk every 5 steps, which makes its motion less
# persistent than the data's (in the figure it stays near the start). With Q choosing, the paths run towards the goal but are not straight: every step is still a
# piece of a behaviour chunk. What this shows: the assembled `update` (flow BC, distillation, chunk dynamics, reward and
# success models, value from model rollouts, critic) learns a Q whose argmax over behaviour chunks is a much better policy
# than the behaviour, from data made by a policy that rarely reaches the goal from the start region. What it does not show:
# anything about OGBench or long horizons (the model is easy here, its dynamics loss ends near 0.006 as printed above, and the
# data cover the whole square), or that the model rollouts are needed (a model-free chunked critic might do as well on
# this problem), or how the result varies with seeds, since we ran one. Chapter 10's CPU study measures the agent on
# cube-single.

# %% [markdown]
# ## Cost of one update at the paper's width
#
# One update at the paper's single-task configuration (512×4, B = 256, n = 10, H = 10, N_train = 8, F = 10, rollouts
# from all 256 states), on this CPU: a printed measurement, not a test. The benchmark (chapter 9) reports
# medians of ≥ 50 updates; here a handful keeps the notebook fast.

# %%
agent = MACAgent(28, 5, MACConfig(), device='cpu')
g = torch.Generator().manual_seed(0)
big = dict(observations=torch.randn(256, 28), actions=torch.rand(256, 50) * 2 - 1, rewards=-torch.rand(256),
           next_observations=torch.randn(256, 28), masks=torch.ones(256))
agent.update(big, g)
ts = []
for _ in range(3): t0 = time.perf_counter(); agent.update(big, g); ts.append(time.perf_counter() - t0)
print(f'one update at 512x4, B=256: median {np.median(ts):.2f} s over {len(ts)} updates (torch threads: {torch.get_num_threads()})')

# %% [markdown]
# ## Implementation details
#
# 1. One Adam over all networks on the summed loss (official); each loss reaches only its own network (checked above),
#    so this equals separate optimisers. Rollouts, targets and the critic's $V_\varphi(\hat s_1)$ use pre-update weights.
# 2. Target EMA with the *pre-update* value weights (official one-step lag), applied before the Adam step.
# 3. Value targets: Eq. 10 by the recursion $G_k = \hat r_k + m_k\gamma^n G_{k+1}$ with $G_H = \bar V(\hat s_H)$, identical to the
#    official GAE(λ = 1) (chapter 6); averaged over all k (the paper samples k).
# 4. Chunk rewards are the paper's discounted **sum** (chapter 2a); the official code's mean is the data flag `reward_agg='mean'`.
# 5. Flow convention of Eq. 2 (noise at u = 0), not Eq. 7's printed one (chapters 1, 3).
# 6. Rollouts start from the first `min(B, rollout_batch)` batch states (official `rollout_batch_size` = 1024).
# 7. Masks from the success net, trained on $1 - m$ = 0 in single-task data (official), so rollouts never terminate in practice.
# 8. The critic uses the dynamics widths (official). Only V has a target network.
# 9. MAC(FQL): actor loss on all rollout states, $\alpha\|\pi_\omega - \mathrm{clip}(\pi_\theta)\|^2 - Q/\overline{|Q|}$ through a frozen critic; acts
#    with one $\pi_\omega$ sample. Unlike the official `mbfql.py` we keep n = 10 and discount chunks by γⁿ in the targets
#    (the official code's γ there is a bug: its GAE discounts each chunk step by γ, [`mbfql.py:150-154`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mbfql.py#L150-L154),
#    while its critic uses γⁿ, [`mbfql.py:198`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mbfql.py#L198); its default n = 5 is [`mbfql.py:500`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mbfql.py#L500)).
# 10. w/o distillation: the flow's own field with one Euler step as the behaviour sampler (chapter 4's reading).
# 11. MAC(Gau): the Gaussian chunk policy's NLL replaces flow + distillation; rejection sampling over its samples.

# %%
#| hide
import nbdev; nbdev.nbdev_export()
