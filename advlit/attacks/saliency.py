"""Saliency-map search for JSMA: the best pixel, or the best pixel pair, per image.

With ``u`` the target logit's gradient and ``v`` minus the other logits' summed gradient (signs
flipped for decreasing attacks), a pair (p, q) is admissible when ``u_p + u_q > 0`` and
``v_p + v_q > 0`` and scores ``(u_p + u_q)(v_p + v_q)`` (Papernot et al. 2016, as cleverhans).
"""

import torch

MAX_CANDIDATES = 64  # images with more candidate pixels are searched over all pairs
FULL_CHUNK = 16  # images per chunk of that full D x D search
_NEG = float("-inf")


def _pair_scores(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Scores ``(N, K, K)`` of all pairs of K pixels; -inf where not admissible or p == q."""
    sa = a[:, :, None] + a[:, None, :]
    sb = b[:, :, None] + b[:, None, :]
    eye = torch.eye(a.shape[1], dtype=torch.bool, device=a.device)
    ok = (sa > 0) & (sb > 0) & valid[:, :, None] & valid[:, None, :] & ~eye
    return torch.where(ok, sa * sb, _NEG)


def _argmax_pairs(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Best score and its pair ``(best, i, j)`` per image over all pairs of the given pixels."""
    best, flat = _pair_scores(a, b, valid).flatten(1).max(1)
    k = a.shape[1]
    return best, flat // k, flat % k


def second_pareto_layer(u: torch.Tensor, v: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """Mask ``(N, D)`` of domain pixels that at most one other domain pixel dominates in (u, v).

    The score grows with both ``u_q`` and ``v_q``, so a best pair can always be found whose
    pixels are each dominated by nothing but, at most, the other one. Sorting by u, a pixel is
    in this layer when its v beats the second-largest v before it (two cummax passes).
    """
    u = u.masked_fill(~domain, _NEG)
    v = v.masked_fill(~domain, _NEG)
    order = u.argsort(1, descending=True)
    vs = v.gather(1, order)  # (N, D) v in decreasing-u order
    first = torch.full_like(vs[:, :1], _NEG)
    best_before = torch.cat([first, vs.cummax(1).values[:, :-1]], 1)
    second_before = torch.cat([first, torch.minimum(vs, best_before).cummax(1).values[:, :-1]], 1)
    keep = (vs > second_before) & (vs > _NEG)
    return torch.zeros_like(domain).scatter(1, order, keep)


def best_pixels(u: torch.Tensor, v: torch.Tensor, domain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The single-pixel rule: ``(p, ok)`` per image; ``ok`` is False where no pixel is admissible."""
    scores = torch.where((u > 0) & (v > 0) & domain, u * v, _NEG)
    best, p = scores.max(1)
    return p, best > _NEG


def best_pairs(u: torch.Tensor, v: torch.Tensor, domain: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The pixel-pair rule, exact: ``(p, q, ok)`` per image, for ``u, v, domain`` of shape ``(N, D)``.

    Only pixels of the second Pareto layer can form a best pair (about 7 of 784 on MNIST), so
    all pairs among them are scored; an image with more than MAX_CANDIDATES of them falls
    back to scoring all D x D pairs.
    """
    layer = second_pareto_layer(u, v, domain)
    count = layer.sum(1)
    k = int(count.max().clamp(2, MAX_CANDIDATES))
    cand = layer.to(u.dtype).topk(k, dim=1).indices  # (N, K): the layer first
    best, i, j = _argmax_pairs(u.gather(1, cand), v.gather(1, cand), layer.gather(1, cand))
    p, q = cand.gather(1, i[:, None])[:, 0], cand.gather(1, j[:, None])[:, 0]
    for rows in (count > MAX_CANDIDATES).nonzero()[:, 0].split(FULL_CHUNK):
        best[rows], p[rows], q[rows] = _argmax_pairs(u[rows], v[rows], domain[rows])
    return p, q, best > _NEG
