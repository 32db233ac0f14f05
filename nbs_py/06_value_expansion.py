# %% [markdown]
# # Value expansion with chunk models
# > Model rollouts of a chunk policy, nH-step value targets, the value and critic losses, and the bias/compounding-error dilemma they resolve.

# %%
#| default_exp value

# %%
#| export
from __future__ import annotations

import torch
from torch import nn

from mac.core import MLP

# %%
#| hide
from fastcore.test import test_eq, test_close, test_fail
import numpy as np
import matplotlib.pyplot as plt

# %% [markdown]
# ## In the paper
#
# > In model-based value expansion, we first train a dynamics model, and train an on-policy value function with the
# > following update:
# > $V(\hat{s}_t) \leftarrow \sum_{i=0}^{n-1} \gamma^i r(\hat{s}_{t+i}, \hat{a}_{t+i}) + \gamma^n \bar{V}(\hat{s}_{t+n}), \quad (3)$
# > where $(s_t = \hat{s}_t, \hat{a}_t, \hat{s}_{t+1}, \dots, \hat{s}_{t+n})$ is a length-$n$ imaginary rollout sampled
# > from the model using the current policy, and $\bar{V}$ is a target value function. (Section 4)
#
# > On the one hand, we want model rollouts to be *long* enough. If $n$ is too small, we end up with a large number of
# > *biased* value updates with short-horizon bootstrapping in Equation (3). (Section 4)
#
# > On the other hand, we want model rollouts to be *short* enough. If we use a standard policy $\pi(a | s)$, we need to
# > autoregressively call a learned dynamics model $n$ times to generate a length-$n$ model rollout
# > $(\hat{s}_t, \hat{a}_t, \hat{s}_{t+1}, \dots, \hat{s}_{t+n})$. This makes errors in the dynamics model accumulate
# > *within* the trajectory chunk, which would degrade performance. (Section 4)
#
# > To train value functions, we first generate $M$ imaginary (action-chunk) trajectories of length $H$,
# > $\mathcal{D}^{\text{img}} = \{(s_t^{(i)}, \hat{\mathbf{a}}_t^{(i)}, \hat{\mathbf{r}}_t^{(i)}, \hat{s}_{t+n}^{(i)}, \hat{\mathbf{a}}_{t+n}^{(i)}, \hat{\mathbf{r}}_{t+n}^{(i)}, \dots, \hat{s}_{t+Hn}^{(i)})\}_{i=1}^M, \quad (9)$
# > where $\hat{\mathbf{a}}_t$ denotes the action chunk $\hat{\mathbf{a}}_{t:t+n}$ generated from the rejection sampling
# > policy, and $\hat{\mathbf{r}}_t$ denotes the discounted sum of rewards $\sum_{i=0}^{n-1} \gamma^i r_{t+i}$ predicted from
# > the reward model $r_\psi(\cdot | s_t, \mathbf{a}_t)$. Here, initial states $s_t^{(i)}$ are uniformly sampled from the
# > dataset, and subsequent actions, rewards, and next states are synthesized by our rejection-sampling policy, reward
# > model, and dynamics model, respectively, hence the hat notation. (Section 4.2)
#
# > After collecting $\mathcal{D}^{\text{img}}$, we update the value function $V_\varphi(s_t) : \mathcal{S} \rightarrow \mathbb{R}$
# > with the following loss:
# > $L^V(\varphi) = \mathbb{E} \left[ \left( V_\varphi(\hat{s}_{t+kn}) - \sum_{i=k}^{H-1} \gamma^{(i-k)n} \hat{\mathbf{r}}_{t+in} - \gamma^{(H-k)n} V_\varphi(\hat{s}_{t+Hn}) \right)^2 \right], \quad (10)$
# > where $\bar{\varphi}$ denotes exponentially averaged target parameters (Mnih et al., 2013), and the expectations are
# > over $(s_t = \hat{s}_t, \hat{\mathbf{a}}_t, \hat{\mathbf{r}}_t, \dots, \hat{s}_{t+Hn})$ uniformly sampled from
# > $\mathcal{D}^{\text{img}}$ and $k$ uniformly sampled from $\{0, 1, \dots, H-1\}$. (Section 4.2)
#
# > Finally, we train the action-chunk Q function $Q_{\varphi}(s_t, a_t) : \mathcal{S} \times \mathcal{A}^n \rightarrow \mathbb{R}$
# > for the rejection sampling with the following loss:
# > $L^Q(\varphi) = \mathbb{E}_{s_t \sim \mathcal{D}} \left[ (Q_{\varphi}(s_t, \hat{\mathbf{a}}_t) - \hat{\mathbf{r}}_t - \gamma^n [V_{\varphi}(\hat{s}_{t+n})]_{\times})^2 \right]. \quad (11)$ (Section 4.2)
#
# > We do not reuse $\mathcal{D}^{\text{img}}$ after performing one gradient update of value functions; *i.e.*, we
# > generate new model rollouts every epoch. (Section 4.2)
#
# **Which V in the bootstrap.** Eq. 10 as printed bootstraps from the online $V_\varphi(\hat s_{t+Hn})$, yet the sentence
# after it defines target parameters $\bar\varphi$ that the printed equation never uses. The official code bootstraps
# from the EMA target network $\bar V$ (with the default `target_network=True`, [`mac.py:477`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L477),
# its GAE reads both the values and the next values from `target_value`, [`mac.py:161-163`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L161-L163)), as Eq. 3 does, and so do we: in
# this chapter's derivation and code the bootstrap is $\bar V(\hat s_H)$. Below, $\hat s_k$ stands for $\hat s_{t+kn}$ and
# $\hat r_k$ for $\hat{\mathbf r}_{t+kn}$; $[\cdot]_\times$ is the stop-gradient.
#
# | symbol | meaning | code |
# |---|---|---|
# | H | model calls per rollout (10) | `H` |
# | n | env steps per call (chunk length, 10) | `n` |
# | $\Gamma = \gamma^n$ | discount per chunk | `gamma_n` |
# | $\hat r_k$, $m_k$ | chunk reward and continuation mask at step k | `rewards`, `masks`, (H, B) |
# | $\bar V$ | EMA target value network | `target_value` |
# | $G_k$ | nH-step target from step k | `targets`, (H, B) |

# %% [markdown]
# ## Derivation
#
# 1. **Eq. 10 as a recursion.** Let $G_H = \bar V(\hat s_H)$ and $G_k = \hat r_k + \Gamma G_{k+1}$. Unrolling,
#    $G_k = \sum_{i=k}^{H-1}\Gamma^{i-k}\hat r_i + \Gamma^{H-k}\bar V(\hat s_H)$, and $\Gamma^{i-k} = \gamma^{(i-k)n}$: Eq. 10's target.
# 2. **Termination.** With continuation masks $m_k \in \{0, 1\}$ (0 when the chunk reaches success),
#    $G_k = \hat r_k + m_k \Gamma G_{k+1}$: a success at step j cuts every $G_k$ with $k \le j$ after $\hat r_j$.
# 3. **The official GAE with λ = 1 is the same thing.** The code computes $\delta_k = \hat r_k + m_k\Gamma\bar V_{k+1} - \bar V_k$,
#    $A_k = \delta_k + m_k\Gamma\lambda A_{k+1}$ ($A_H = 0$), $G_k = \bar V_k + A_k$. With λ = 1, $\bar V_k + A_k =
#    \hat r_k + m_k\Gamma(\bar V_{k+1} + A_{k+1})$, i.e. $G_k = \hat r_k + m_k\Gamma G_{k+1}$ with $G_H = \bar V_H$: step 2's
#    recursion. Every $\bar V_k$ with $k < H$ cancels; only the bootstrap $\bar V(\hat s_H)$ survives, computed by the target net.
# 4. **Which k.** The paper samples $k \sim U\{0..H-1\}$; the code averages the loss over all k and rollouts, the same
#    expectation with less variance. We average.
# 5. **The critic** regresses $Q(s_t, \hat{\mathbf a}_0)$ on a one-chunk target through the *online* $V$ (Eq. 11), on the
#    rollout's first step only: Q is trained on the chunks the policy selects, which is what rejection sampling asks it to rank.
# 6. **The dilemma.** The target's bias has two parts: $\Gamma^{H-k}(\bar V - V^\pi)(\hat s_H)$ from bootstrapping, which
#    shrinks as the horizon $nH$ grows, and the model's error accumulated over H calls, which grows with H. Chunk models
#    buy a long horizon $nH$ with few calls H.

# %% [markdown]
# ## Toy first: the dilemma in one figure
#
# A 30-state ring, a fixed random-walk policy (exactly known $P$ and $r$, so $V^\pi = (I - \gamma P)^{-1} r$ exactly),
# and a biased bootstrap value $\bar V = V^\pi - 2$ (a constant offset, as from a half-trained value network). For a target horizon of T environment steps we compare the exact
# expected target of three models, computed with matrices (no sampling):
#
# * an exact one-step model: $\sum_{i<T}\gamma^i P^i r + \gamma^T P^T \bar V$, whose bias $-2\gamma^T$ falls with T;
# * a noisy one-step model $\hat P = (1-\epsilon)P + \epsilon Q$ ($Q$ a random transition matrix): T calls;
# * a noisy chunk model with the same per-call error, $\hat P_n = (1-\epsilon)P^n + \epsilon Q$: only T/n calls (n = 10),
#   with exact chunk rewards $\sum_{i<n}\gamma^i P^i r$.
#
# **What this toy builds in.** The chunk model gets the *same* per-call error ε as the one-step model, so "fewer calls,
# less error" is assumed here, not found: the toy shows how the bias/error trade-off plays out *if* a chunk call is no
# worse than a one-step call. A real chunk call predicts n steps ahead and is less accurate. Chapter 5 derives how much
# worse it may be before chunking stops paying (a factor $S_n(\lambda) = \sum_{i<n}\lambda^i$) and measures learned
# models on held-out cube-double trajectories: one n = 10 call has a larger error than one n = 1 call (MSE 0.0047
# against 0.0014), yet after 100 environment steps the chunk model's error is about 3800 times smaller (0.033 against 124).

# %%
S, gamma, eps, n_chunk = 30, 0.97, 0.1, 10
rng = np.random.default_rng(0)
P = np.zeros((S, S))
for s in range(S): P[s, (s + 1) % S], P[s, (s - 1) % S], P[s, s] = 0.6, 0.3, 0.1   # drift around the ring
r = np.where(np.arange(S) < 5, 1.0, 0.0) - 0.1                                    # reward near "home"
V = np.linalg.solve(np.eye(S) - gamma * P, r)
Q = rng.dirichlet(np.ones(S) * 0.3, size=S)                                        # where model errors send you

def expand(P_call, r_call, g_call, calls, V_boot=V - 2.0):
    "Expected value-expansion target after `calls` model calls: Σ_k g^k M^k r_call + g^calls M^calls V_boot."
    G, M, disc = np.zeros(S), np.eye(S), 1.0
    for _ in range(calls): G += disc * M @ r_call; M, disc = M @ P_call, disc * g_call
    return G + disc * M @ V_boot

rmse = lambda G: np.sqrt(np.mean((G - V) ** 2))
Pn = np.linalg.matrix_power(P, n_chunk); rn = sum(gamma ** i * np.linalg.matrix_power(P, i) @ r for i in range(n_chunk))
T = np.arange(0, 201, 10)
bias = {'exact one-step model': [rmse(expand(P, r, gamma, t)) for t in T],
        f'noisy one-step model (ε = {eps})': [rmse(expand((1 - eps) * P + eps * Q, r, gamma, t)) for t in T],
        f'noisy chunk model, n = {n_chunk} (ε = {eps})': [rmse(expand((1 - eps) * Pn + eps * Q, rn, gamma ** n_chunk, t // n_chunk)) for t in T]}
fig, ax = plt.subplots(figsize=(6, 3.6), dpi=80)
for k, v in bias.items(): ax.plot(T, v, 'o-', ms=3, label=k)
ax.set(xlabel='target horizon T (environment steps)', ylabel='RMS error of the target vs $V^\\pi$', yscale='log',
       title='Longer horizons cut bootstrap bias; chunks keep the model error small')
ax.legend(fontsize=8); plt.show()
for k, v in bias.items(): print(f'{k:38s} T=0: {v[0]:.3f}  T=100: {v[10]:.3f}  T=200: {v[20]:.3f}')

# %%
b = {k: np.array(v) for k, v in bias.items()}
e1, n1, nc = b.values()
assert (np.diff(e1) < 0).all()                             # exact model: strictly less biased with every longer horizon
assert n1[1] > n1[0] and n1[1:].min() > 0.9 * n1[0]        # noisy one-step model: expanding makes it worse, never better
assert (n1[1:] > e1[1:]).all()
assert nc[10] < 0.5 * n1[10] and nc[20] < 0.5 * n1[20]     # the chunk model at T = 100, 200: far less error


# %% [markdown]
# ## Implementation: targets
#
# Rewards and masks come as (H, B) tensors, the bootstrap as (B,). A Python loop over H (10) is fine: it is a
# static-length loop that `torch.compile` unrolls.

# %%
#| exports
def nstep_targets(rewards, masks, bootstrap, gamma_n: float):
    "Eq. 10 with termination: G_k = r_k + m_k·γⁿ·G_{k+1}, G_H = bootstrap; rewards/masks (H, B) → targets (H, B)."
    G, out = bootstrap, []
    for k in range(rewards.shape[0] - 1, -1, -1):
        G = rewards[k] + masks[k] * gamma_n * G   # eq. (10): G_k = r_k + m_k Γ G_{k+1}
        out.append(G)
    return torch.stack(out[::-1])

def gae_targets(rewards, masks, values, gamma_n: float, lam: float = 1.0):
    "The official form: GAE(λ) on target values V̄(ŝ_0..ŝ_H) (H+1, B); returns V̄_k + A_k (H, B)."
    A, out = torch.zeros_like(values[0]), []
    for k in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards[k] + masks[k] * gamma_n * values[k + 1] - values[k]
        A = delta + masks[k] * gamma_n * lam * A
        out.append(values[k] + A)
    return torch.stack(out[::-1])


# %% [markdown]
# Checks: the targets equal the hand-unrolled sum of Eq. 10 on random numbers; with H = 1 they are the one-step
# TD target; a zero mask stops the sum; GAE with λ = 1 equals the recursion whatever the intermediate values.

# %%
H, B, Gn = 5, 7, 0.9
rw, bs = torch.randn(H, B), torch.randn(B)
ones = torch.ones(H, B)
G = nstep_targets(rw, ones, bs, Gn)
for k in range(H):
    hand = sum(Gn ** (i - k) * rw[i] for i in range(k, H)) + Gn ** (H - k) * bs
    test_close(G[k], hand, eps=1e-5)
test_close(nstep_targets(rw[:1], ones[:1], bs, Gn)[0], rw[0] + Gn * bs, eps=1e-6)      # H = 1: one-step TD target
m = ones.clone(); m[2] = 0                                                             # success at step 2
Gm = nstep_targets(rw, m, bs, Gn)
test_close(Gm[0], rw[0] + Gn * rw[1] + Gn ** 2 * rw[2], eps=1e-5)                     # nothing after step 2 counts
test_close(Gm[3:], G[3:], eps=1e-6)                                                    # later steps are unaffected
vals = torch.randn(H + 1, B); vals[-1] = bs
test_close(gae_targets(rw, m, vals, Gn, lam=1.0), nstep_targets(rw, m, bs, Gn), eps=1e-5)
assert not torch.allclose(gae_targets(rw, m, vals, Gn, lam=0.5), nstep_targets(rw, m, bs, Gn))  # λ < 1 differs


# %% [markdown]
# ## Implementation: rollouts, value and critic
#
# The value networks are the chapter-0 MLP: $V_\varphi(s)$ on the state, $Q_\varphi(s, \mathbf a)$ on the state and chunk.
# A rollout runs H steps of a policy (any function from states to chunks, e.g. rejection sampling, chapter 7) in the
# chunk model, entirely without gradients: its states, chunks, rewards and masks are data for the losses.

# %%
#| exports
class ValueNet(nn.Module):
    "V_φ(s) → (B,)."
    def __init__(self, obs_dim: int, hidden=(512, 512, 512, 512)):
        super().__init__(); self.net = MLP(obs_dim, 1, hidden)
    def forward(self, obs): return self.net(obs).squeeze(-1)

class QNet(nn.Module):
    "Q_φ(s, a) → (…,) for chunks a (…, n·d); broadcasts a state over N chunks when given (B, S) and (B, N, n·d)."
    def __init__(self, obs_dim: int, chunk_dim: int, hidden=(512, 512, 512, 512)):
        super().__init__(); self.net = MLP(obs_dim + chunk_dim, 1, hidden)
    def forward(self, obs, actions):
        if actions.dim() == obs.dim() + 1: obs = obs.unsqueeze(-2).expand(*actions.shape[:-1], obs.shape[-1])
        return self.net(torch.cat([obs, actions], -1)).squeeze(-1)


# %%
#| exports
@torch.no_grad()
def model_rollout(policy, dynamics, outcome_fn, obs0, H: int) -> dict[str, torch.Tensor]:
    "Eq. 9: H chunk-model steps from obs0 (B, S): states (H+1, B, S), actions (H, B, n·d), and `outcome_fn`'s rewards and masks (H, B)."
    states, actions = [obs0], []
    for _ in range(H):
        a = policy(states[-1])                  # â_k ~ π(ŝ_k)
        actions.append(a); states.append(dynamics(states[-1], a))  # ŝ_{k+1} = p_ψ(ŝ_k, â_k)
    S_, A_ = torch.stack(states), torch.stack(actions)
    rewards, masks = outcome_fn(S_[:-1], A_)   # one call: a success model gives both at once
    return dict(states=S_, actions=A_, rewards=rewards, masks=masks)

def value_loss(value: ValueNet, states, targets):
    "Eq. 10, averaged over all H steps and rollouts: mean (V_φ(ŝ_k) − G_k)², targets detached."
    return ((value(states[:-1]) - targets.detach()) ** 2).mean()

def critic_loss(q: QNet, value: ValueNet, obs0, a0, r0, m0, obs1, gamma_n: float):
    "Eq. 11: mean (Q_φ(s_0, â_0) − stopgrad(r̂_0 + m_0·γⁿ·V_φ(ŝ_1)))² on the rollout's first step, with the online V."
    with torch.no_grad(): y = r0 + m0 * gamma_n * value(obs1)
    return ((q(obs0, a0) - y) ** 2).mean()


# %% [markdown]
# Checks: a hand-built 2-step rollout equals the batched one, masks included, and carries no graph although the
# policy has a parameter; no gradient reaches the value net through the critic's target; Q broadcasts one state over
# N chunks, each scored as on its own.

# %%
torch.manual_seed(0)
W_pi = torch.full((2, 4), 0.3, requires_grad=True)                               # a policy with a trainable parameter
dyn = lambda s, a: s + a[..., :2]
pol = lambda s: torch.tanh(s @ W_pi)
rew = lambda s, a: -(s ** 2).sum(-1); msk = lambda s, a: (s[..., 0] < 0.5).float()
s0 = torch.randn(6, 2)
ro = model_rollout(pol, dyn, lambda s, a: (rew(s, a), msk(s, a)), s0, H=2)
with torch.no_grad(): a0 = pol(s0); s1 = dyn(s0, a0); a1 = pol(s1); s2 = dyn(s1, a1)
test_close(ro['states'], torch.stack([s0, s1, s2])); test_close(ro['actions'], torch.stack([a0, a1]))
test_close(ro['rewards'], torch.stack([rew(s0, a0), rew(s1, a1)]))
test_eq(ro['masks'], torch.stack([msk(s0, a0), msk(s1, a1)])); assert 0 < ro['masks'].mean() < 1   # both kinds of step
test_eq((ro['actions'].requires_grad, ro['states'].requires_grad), (False, False))  # π has a parameter; the rollout is data

V, Qn = ValueNet(2, hidden=(16,)), QNet(2, 4, hidden=(16,))
tg = nstep_targets(ro['rewards'], ro['masks'], V(ro['states'][-1]), 0.9)
value_loss(V, ro['states'], tg).backward()
assert all(p.grad is not None for p in V.parameters())
V.zero_grad()
critic_loss(Qn, V, s0, a0, ro['rewards'][0], ro['masks'][0], s1, 0.9).backward()
assert all(p.grad is None or (p.grad == 0).all() for p in V.parameters())        # the critic's target is stop-grad
assert all(p.grad is not None for p in Qn.parameters())
A = torch.randn(6, 8, 4)
test_eq(Qn(s0, A).shape, (6, 8)); test_close(Qn(s0, A)[:, 3], Qn(s0, A[:, 3]), eps=1e-6)   # one state, N chunks


# %% [markdown]
# The two losses against a hand computation, on networks set by hand: with no hidden layers the MLP is one linear map,
# which we overwrite so that $V(s) = 2 s_0$ and $Q(s, \mathbf a) = 0.5 s_0 + a_0$. The value loss is the mean of
# $(V(\hat s_k) - G_k)^2$ over all H·B pairs, at the states $\hat s_0..\hat s_{H-1}$ the targets start from, and treats $G_k$ as a
# constant: $\partial L/\partial w = \frac{2}{HB}\sum_{k,b}(V(\hat s_k) - G_k)\,\hat s_k$. The targets here bootstrap from V itself
# with its graph attached, so a missing detach would show in the gradient. The critic's target is
# $\hat r_0 + m_0\gamma^n V(\hat s_1)$ with the V it is given, the mask included (the rollout above has terminations).

# %%
def linear(net, w):  # a no-hidden-layer ValueNet/QNet set to x ↦ w·x
    with torch.no_grad(): net.net[0].weight.copy_(torch.tensor([w])); net.net[0].bias.zero_()
    return net
V_l, Q_l = linear(ValueNet(2, hidden=()), [2.0, 0.0]), linear(QNet(2, 4, hidden=()), [0.5, 0.0, 1.0, 0.0, 0.0, 0.0])
st, H, B = ro['states'], 2, 6
tg = nstep_targets(ro['rewards'], ro['masks'], V_l(st[-1]), 0.9)
loss = value_loss(V_l, st, tg); loss.backward()
err = [2 * st[k, :, 0] - tg[k].detach() for k in range(H)]                       # V(ŝ_k) − G_k
test_close(loss, sum((e ** 2).sum() for e in err) / (H * B), eps=1e-4)
test_close(V_l.net[0].weight.grad[0], sum(2 * (e[:, None] * st[k]).sum(0) for k, e in enumerate(err)) / (H * B), eps=1e-4)
y = ro['rewards'][0] + ro['masks'][0] * 0.9 * 2 * s1[:, 0]                      # r̂_0 + m_0 γⁿ V(ŝ_1)
test_close(critic_loss(Q_l, V_l, s0, a0, ro['rewards'][0], ro['masks'][0], s1, 0.9), ((0.5 * s0[:, 0] + a0[:, 0] - y) ** 2).mean(), eps=1e-4)

# %% [markdown]
# ## Implementation details
#
# 1. Value targets bootstrap from the EMA target network $\bar V$ (τ = 0.005), as the official code
#    ([`mac.py:161-163`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L161-L163)); Eq. 10 prints $V_\varphi$ while the sentence after it names $\bar\varphi$.
# 2. The loss averages over all k and rollouts rather than sampling k (same expectation).
# 3. The critic uses the online $V_\varphi$ under stop-gradient (Eq. 11 and the code) and only the rollout's first step.
# 4. Masks come from the success model ($m = 1 - \mathbb 1(\sigma(f) > 0.5)$); in single-task runs that model is trained
#    on all-zero targets, so in practice nothing terminates (the rollout masks come from the success net,
#    [`mac.py:144-150`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L144-L150); its target is $1 - m$, [`mac.py:46`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/agents/mac.py#L46); single-task batches set every $m$ to 1,
#    [`datasets.py:768`](https://github.com/kwanyoungpark/MAC/blob/150099d235f3667b17baad0b7a321145bd7797bd/utils/datasets.py#L768)).
# 5. No clipping of values or targets (the code has none).

# %%
#| hide
import nbdev; nbdev.nbdev_export()
