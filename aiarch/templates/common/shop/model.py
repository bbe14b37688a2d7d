"""The recommender model: PyTorch, deterministic seeded weights created in code, int8 inference.

score(user) = items @ MLP([user_embedding ; mean(items[history(user)])]), top-k over all items,
the user's recent items excluded.

Weights and each user's recent-item history come from a seeded generator, so every process
that builds the same preset with the same seed holds the same model, bit for bit. The seed comes
from MODEL_SEED and MODEL_VERSION (weights_seed): a redeploy with a new version changes the
model, everywhere the same way.

Why int8: a float32 matrix product sums in an order that depends on the batch's shape (the
kernel changes with it), so a user's scores differ in their last bits between batch sizes, and
batching would change answers. Here embeddings and weights are int8 codes and activations are
re-quantized to int8 per row, so every product sum is an exact integer (|sum| < 2**24, exact in
float32 too) and everything else is a per-row or per-element operation. A user's answer is the
same, to the bit, whatever batch it was computed in and whichever kernel summed it: int8 GEMM
(torch._int_mm) on CPU where a check at start-up finds it exact for the shapes served, float32
GEMM elsewhere (GPU, or a CPU whose int8 kernel fails the check).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from shop.batching import MicroBatcher
from shop.ports import Recommendations, RecommenderUnavailable, ScoredItem, UnknownUser
from shop.presets import ModelPreset
from shop.settings import MAX_K, Settings

log = logging.getLogger("shop.model")

CODE_MAX = 127  # symmetric int8
EXACT_FLOAT32_WIDTH = 2**24 // CODE_MAX**2  # widest sum of code products float32 holds exactly


def weights_seed(model_seed: int, model_version: str) -> int:
    """The generator seed of a model version's weights. Version "1" is the original model, seeded
    with model_seed itself. Any other version's seed comes from a SHA-256 of both (not hash(),
    which Python salts per process), so every replica of one version holds the same weights, and
    another version, other weights."""
    if model_version == "1":
        return model_seed
    digest = hashlib.sha256(f"{model_seed}/{model_version}".encode()).digest()
    return int.from_bytes(digest[:8], "big")  # what torch.Generator.manual_seed takes: 64 bits


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric int8 codes (as integer-valued floats) and each row's scale."""
    scale = x.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny) / CODE_MAX
    return torch.round(x / scale).clamp_(-CODE_MAX, CODE_MAX), scale


MatmulCodes = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class RecommenderNet(nn.Module):
    # Buffers (register_buffer): they move with the model and are saved with it.
    user_embeddings: torch.Tensor
    item_codes: torch.Tensor
    item_scale: torch.Tensor
    histories: torch.Tensor
    layers: nn.ModuleList

    def __init__(self, preset: ModelPreset, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        dim = preset.dim
        widths = [2 * dim, *preset.hidden, dim]
        if max(widths) > EXACT_FLOAT32_WIDTH:
            raise ValueError(f"layers wider than {EXACT_FLOAT32_WIDTH} would not sum exactly in float32")
        self.preset = preset
        self.register_buffer("user_embeddings", torch.randn(preset.n_users, dim, generator=generator) * 0.1)
        items = torch.randn(preset.n_items, dim, generator=generator) * 0.1
        item_scale = items.abs().max() / CODE_MAX
        self.register_buffer("item_codes", torch.round(items / item_scale).to(torch.int8))
        self.register_buffer("item_scale", item_scale)
        del items
        self.layers = nn.ModuleList()
        for width_in, width_out in itertools.pairwise(widths):
            bound = 1.0 / width_in**0.5
            weight = (torch.rand(width_out, width_in, generator=generator) * 2 - 1) * bound
            bias = (torch.rand(width_out, generator=generator) * 2 - 1) * bound
            self.layers.append(QuantizedLinear(weight, bias))
        # Each user's recently viewed items; served requests carry only the user id.
        self.register_buffer(
            "histories",
            torch.randint(0, preset.n_items, (preset.n_users, preset.history_length), generator=generator),
        )
        self.max_k = min(MAX_K, preset.n_items - preset.history_length)
        self.use_int8_kernel = False
        # Float32 copies of the int8 weights, by the id of the weight tensor they copy. Each entry
        # holds that tensor too, so an id is never reused while its entry lives: a moved model
        # (.to(), .cuda(): new tensors) makes new copies instead of reading the old device's.
        self._float_weights: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.eval()

    def matmul_codes(self, codes: torch.Tensor, weight_codes: torch.Tensor) -> torch.Tensor:
        """codes (B, K), integer-valued floats, times int8 weight_codes (N, K) transposed: exact
        sums, as int32 from the int8 kernel or as integer-valued float32."""
        if self.use_int8_kernel:
            product: torch.Tensor = torch._int_mm(codes.to(torch.int8), weight_codes.T)
            return product
        cached = self._float_weights.get(id(weight_codes))
        if cached is None or cached[0] is not weight_codes:
            cached = self._float_weights[id(weight_codes)] = (weight_codes, weight_codes.T.to(torch.float32))
        return codes @ cached[1]

    def choose_kernel(self, max_batch: int = 32) -> None:
        """int8 GEMM where it runs here and agrees with float32 on every shape the model uses;
        float32 (exact on these codes too) elsewhere. Call after moving the model."""
        self.use_int8_kernel = False
        self._float_weights = {}
        if self.item_codes.device.type != "cpu" or not hasattr(torch, "_int_mm"):
            return
        generator = torch.Generator().manual_seed(1)
        # The shapes served: every layer and the items, at the batch sizes the batcher forms
        # (the kernel may change with them); once against every item.
        layers = [layer for layer in self.layers if isinstance(layer, QuantizedLinear)]
        checks = [(self.item_codes, 32)] + [
            (weight, rows)
            for weight in (self.item_codes[:4099], *(layer.weight_codes for layer in layers))
            for rows in (1, 2, 3, 8, 16, 17, 32, 33, 64, max_batch)
        ]
        try:
            for weight, rows in checks:
                codes = torch.randint(-CODE_MAX, CODE_MAX + 1, (rows, weight.shape[1]), generator=generator)
                expected = codes.to(torch.float32) @ weight.T.to(torch.float32)
                got = torch._int_mm(codes.to(torch.int8), weight.T).to(torch.float32)
                if not torch.equal(expected, got):
                    log.warning("int8 GEMM differs from exact sums at %s rows: computing in float32", rows)
                    return
        except RuntimeError:  # the kernel does not take these shapes on this CPU
            return
        self.use_int8_kernel = True

    def query(self, user_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each user's query as int8 codes (integer-valued floats) and its scale."""
        history = self.histories[user_ids]
        # An exact integer sum of the history's codes, then per-element scaling.
        history_sum = self.item_codes[history].sum(dim=1, dtype=torch.int32).to(torch.float32)
        history_mean = history_sum * (self.item_scale / history.shape[1])
        x = torch.cat([self.user_embeddings[user_ids], history_mean], dim=1)
        for index, layer in enumerate(self.layers):
            x = layer(x, self.matmul_codes)
            if index < len(self.layers) - 1:
                x = torch.relu(x)
        return quantize_rows(x)

    def scale(self, raw: torch.Tensor, query_scale: torch.Tensor) -> torch.Tensor:
        """Scores from exact integer dot products: the same floats wherever they are computed."""
        return raw.to(torch.float32) * query_scale * self.item_scale

    def forward(self, user_ids: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each user: (batch,) -> (batch, n_items); history items -inf."""
        query, query_scale = self.query(user_ids)
        scores = self.scale(self.matmul_codes(query, self.item_codes), query_scale)
        return scores.scatter_(1, self.histories[user_ids], float("-inf"))

    def raw_scores(self, user_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact integer scores (batch, n_items) int32, the user's history lowest, and each
        row's query scale."""
        query, query_scale = self.query(user_ids)
        raw = self.matmul_codes(query, self.item_codes).to(torch.int32)
        return raw.scatter_(1, self.histories[user_ids], torch.iinfo(torch.int32).min), query_scale

    def recommend(self, user_ids: torch.Tensor, k: int) -> tuple[list[list[float]], list[list[int]]]:
        """Each user's k best items, best first: (scores, item ids) as lists."""
        with torch.inference_mode():
            raw, query_scale = self.raw_scores(user_ids)
            top_raw, items = self.top(raw, k)
            return self.scale(top_raw, query_scale).tolist(), items.tolist()

    def top(self, raw: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k best items of each row by (score, then lower item id): one set in one order,
        whatever k, batch or kernel, so a top k is the start of any longer top k.

        Fast path: the k highest block maxima are k items scoring at least the k-th of them, m;
        so every item of the k best scores at least m and lies in a block whose maximum reaches
        m. In a row whose (k+2)-th block maximum is below m, those blocks are among its k+1
        best, and only their items are ranked. A row where three block maxima tie at m (rare:
        0 of 2,000 users of the small preset) ranks every item instead, alone."""
        rows, n_items = raw.shape
        block = _block_size(n_items, k)
        if not block:
            return _top_of(raw, torch.arange(n_items, device=raw.device).expand(rows, n_items), k, n_items)
        maxima, blocks = torch.topk(raw.view(rows, n_items // block, block).amax(dim=2), k + 2, dim=1)
        offsets = torch.arange(block, device=raw.device)
        candidates = (blocks[:, : k + 1].unsqueeze(2) * block + offsets).view(rows, (k + 1) * block)
        top_raw, items = _top_of(torch.gather(raw, 1, candidates), candidates, k, n_items)
        tied = (maxima[:, k + 1] >= maxima[:, k - 1]).nonzero().squeeze(1)
        if len(tied):  # those rows' candidates may miss an item: rank all of theirs
            every = torch.arange(n_items, device=raw.device).expand(len(tied), n_items)
            top_raw[tied], items[tied] = _top_of(raw[tied], every, k, n_items)
        return top_raw, items


class QuantizedLinear(nn.Module):
    """A linear layer with int8 weight codes (per output channel scales) and int8 inputs."""

    weight_codes: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        scale = weight.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / CODE_MAX
        self.register_buffer("weight_codes", torch.round(weight / scale[:, None]).to(torch.int8))
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor, matmul_codes: MatmulCodes) -> torch.Tensor:
        codes, x_scale = quantize_rows(x)
        result: torch.Tensor = matmul_codes(codes, self.weight_codes).to(torch.float32) * x_scale * self.weight_scale + self.bias
        return result


def _top_of(raw: torch.Tensor, items: torch.Tensor, k: int, n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best (score, then lower id) of raw scores of these items, as (scores, items)."""
    bits = n_items.bit_length()
    # One int64 key per item: the score in the high bits, the id's rank in the low ones.
    keys = (raw.to(torch.int64) << bits) + ((1 << bits) - 1 - items)
    top_keys, picked = torch.topk(keys, k, dim=1)
    return top_keys >> bits, torch.gather(items, 1, picked)


@functools.cache
def _block_size(n_items: int, k: int) -> int:
    """The largest block of 16 to 128 items that divides the catalog into at least 8 k blocks;
    0 when none does (top-k then ranks every item)."""
    return next((size for size in range(128, 15, -1) if n_items % size == 0 and n_items // size >= 8 * k), 0)


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RecommenderUnavailable("DEVICE=cuda but CUDA is not available to torch here")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def available_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (a container's
    --cpus) rounded down, at least 1. Torch would otherwise start one thread per host core and
    have them throttled against the quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for path, parse in (("/sys/fs/cgroup/cpu.max", _cgroup2_quota), ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", _cgroup1_quota)):
        try:
            with open(path) as file:
                quota = parse(file.read())
        except (OSError, ValueError):
            continue
        if quota:
            cpus = min(cpus, max(1, math.floor(quota)))
        break
    return cpus


def _cgroup2_quota(text: str) -> float | None:
    quota, period = text.split()[:2]
    return None if quota == "max" else int(quota) / int(period)


def _cgroup1_quota(text: str) -> float | None:
    quota = int(text)
    if quota <= 0:
        return None
    with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as file:
        return quota / int(file.read())


class InProcessRecommender:
    """The model in this process, behind the module interface (shop.ports.Recommender).

    Model calls run one at a time on a dedicated thread, so the event loop keeps serving the
    catalog while the model computes, where the process may use two CPUs or more. With one CPU
    they run on the event loop itself: a second thread could not run alongside, and handing each
    call over to it and back cost ~12% of the monolith's throughput (measured on one core). With
    batching on (the default), concurrent requests share one call (shop.batching); answers are
    the same either way.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_version = settings.model_version
        self._net: RecommenderNet | None = None
        self._device = torch.device("cpu")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recommender")
        self._batcher: MicroBatcher[tuple[int, int], list[ScoredItem]] | None = None
        self._inline = False  # model calls on the event loop (one CPU), else on the thread

    def _load(self) -> RecommenderNet:
        # One CPU stays with the event loop: torch threads beyond the rest spin-wait against it
        # (2 threads in 2 CPUs cost the monolith 1.7x the CPU per request of 1, for no throughput).
        cpus = available_cpus()
        self._inline = cpus == 1
        torch.set_num_threads(self.settings.torch_threads or max(1, cpus - 1))
        self._device = pick_device(self.settings.device)
        seed = weights_seed(self.settings.model_seed, self.model_version)
        net = RecommenderNet(self.settings.preset, seed).to(self._device)
        net.choose_kernel(self.settings.batch_max_size)
        log.info(
            "model %s version %s loaded on %s (%s kernel, torch threads %d, calls on %s, batching %s)",
            self.settings.model_size,
            self.model_version,
            self._device,
            "int8" if net.use_int8_kernel else "float32",
            torch.get_num_threads(),
            "the event loop (one CPU)" if self._inline else "their own thread",
            f"up to {self.settings.batch_max_size}, wait {self.settings.batch_max_wait_ms} ms"
            if self.settings.batching
            else "off",
        )
        return net

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._net = await loop.run_in_executor(self._executor, self._load)
        if self.settings.batching:
            self._batcher = MicroBatcher(
                self._run_batch,
                None if self._inline else self._executor,
                self.settings.batch_max_size,
                self.settings.batch_max_wait_ms / 1000,
            )
            self._batcher.start()

    def _run_batch(self, requests: list[tuple[int, int]]) -> list[list[ScoredItem]]:
        """(user id, k) pairs -> each one's k best items; one model call for all."""
        net = self._net
        if net is None:
            raise RecommenderUnavailable("the model is not loaded yet")
        users = torch.tensor([user for user, _ in requests], device=self._device)
        try:
            scores, items = net.recommend(users, max(k for _, k in requests))
        except (RuntimeError, MemoryError) as error:  # out of memory, a device fault: a 503, logged
            log.exception("the model failed on a batch of %d", len(requests))
            raise RecommenderUnavailable(f"the model failed ({type(error).__name__})") from None
        return [
            [ScoredItem(item, score) for item, score in zip(row_items[:k], row_scores[:k], strict=False)]
            for (_, k), row_scores, row_items in zip(requests, scores, items, strict=False)
        ]

    def _check(self, user_id: int, k: int) -> tuple[int, int]:
        if self._net is None:
            raise RecommenderUnavailable("the model is not loaded yet")
        if not 0 <= user_id < self.settings.preset.n_users:
            raise UnknownUser(f"user {user_id} not found")
        if k < 1:
            raise ValueError("k must be at least 1")
        return user_id, min(k, self._net.max_k)

    def recommend_now(self, user_id: int, k: int) -> list[ScoredItem]:
        """Synchronous and unbatched, for scripts and benchmarks."""
        return self._run_batch([self._check(user_id, k)])[0]

    async def recommend(self, user_id: int, k: int) -> Recommendations:
        request = self._check(user_id, k)
        if self._batcher is not None:
            items = await self._batcher.submit(request)
        elif self._inline:
            items = self._run_batch([request])[0]
        else:
            loop = asyncio.get_running_loop()
            items = (await loop.run_in_executor(self._executor, self._run_batch, [request]))[0]
        return Recommendations(items, self.model_version)

    def batch_stats(self) -> dict[str, int]:
        """Model calls and the requests they answered (equal when batching is off)."""
        if self._batcher is None:
            return {}
        return {"batches": self._batcher.batches, "batched_requests": self._batcher.items}

    async def not_ready_reason(self) -> str | None:
        return None if self._net is not None else "model not loaded"

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
            self._batcher = None
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._net = None
