"""The recommender model: PyTorch, deterministic seeded weights created in code.

score(user) = item_embeddings @ MLP([user_embedding ; mean(item_embeddings[history(user)])])

Weights and each user's recent-item history come from a seeded generator, so every process
that builds the same preset with the same seed holds the same model, bit for bit.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from shop.ports import RecommenderUnavailable, ScoredItem, UnknownUser
from shop.presets import ModelPreset
from shop.settings import Settings

log = logging.getLogger("shop.model")


class RecommenderNet(nn.Module):
    def __init__(self, preset: ModelPreset, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        dim = preset.dim
        self.user_embeddings = nn.Parameter(torch.randn(preset.n_users, dim, generator=generator) * 0.1)
        self.item_embeddings = nn.Parameter(torch.randn(preset.n_items, dim, generator=generator) * 0.1)
        widths = [2 * dim, *preset.hidden, dim]
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(widths, widths[1:])):
            linear = nn.Linear(width_in, width_out)
            bound = 1.0 / width_in**0.5
            with torch.no_grad():
                linear.weight.copy_((torch.rand(width_out, width_in, generator=generator) * 2 - 1) * bound)
                linear.bias.copy_((torch.rand(width_out, generator=generator) * 2 - 1) * bound)
            layers.append(linear)
            if index < len(widths) - 2:
                layers.append(nn.ReLU())
        self.mlp = nn.Sequential(*layers)
        # Each user's recently viewed items; served requests carry only the user id.
        self.register_buffer(
            "histories",
            torch.randint(0, preset.n_items, (preset.n_users, preset.history_length), generator=generator),
        )
        self.requires_grad_(False)
        self.eval()

    def forward(self, user_ids: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each user: (batch,) -> (batch, n_items)."""
        history = self.histories[user_ids]
        history_mean = self.item_embeddings[history].mean(dim=1)
        query = self.mlp(torch.cat([self.user_embeddings[user_ids], history_mean], dim=1))
        scores = query @ self.item_embeddings.T
        # Do not recommend what the user has just seen.
        return scores.scatter(1, history, float("-inf"))

    def top_k(self, user_ids: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            return torch.topk(self(user_ids), k, dim=1)


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RecommenderUnavailable("DEVICE=cuda but CUDA is not available to torch here")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


class InProcessRecommender:
    """The model in this process, behind the module interface (shop.ports.Recommender).

    Forward passes run one at a time on a dedicated thread, so the event loop keeps serving
    the catalog while the model computes.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._net: RecommenderNet | None = None
        self._device = torch.device("cpu")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recommender")

    def _load(self) -> RecommenderNet:
        if self.settings.torch_threads:
            torch.set_num_threads(self.settings.torch_threads)
        self._device = pick_device(self.settings.device)
        net = RecommenderNet(self.settings.preset, self.settings.model_seed).to(self._device)
        log.info("model %s loaded on %s", self.settings.model_size, self._device)
        return net

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._net = await loop.run_in_executor(self._executor, self._load)

    def recommend_now(self, user_id: int, k: int) -> list[ScoredItem]:
        """Synchronous form, for scripts and benchmarks."""
        net = self._net
        if net is None:
            raise RecommenderUnavailable("the model is not loaded yet")
        if not 0 <= user_id < self.settings.preset.n_users:
            raise UnknownUser(f"user {user_id} not found")
        k = min(k, self.settings.preset.n_items - self.settings.preset.history_length)
        scores, items = net.top_k(torch.tensor([user_id], device=self._device), k)
        return [ScoredItem(int(i), float(s)) for i, s in zip(items[0].tolist(), scores[0].tolist())]

    async def recommend(self, user_id: int, k: int) -> list[ScoredItem]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.recommend_now, user_id, k)

    async def not_ready_reason(self) -> str | None:
        return None if self._net is not None else "model not loaded"

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._net = None
