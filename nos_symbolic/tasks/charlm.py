"""charlm: a character-level language model on the Python standard library's own source files.

Every Python installation carries the corpus: the .py files under `sysconfig.get_paths()["stdlib"]`
(site-packages excluded), so the task builds locally with no download. A folder of .py files can
stand in for it (data_dir), as the tests do.

    splits = load_charlm()                      # the standard library, about 250k characters
    model = CharTransformer()                   # two layers, about 100k parameters

The split is by file, so validation and test text comes from modules the network never trained on:
a file's place is decided by a hash of its path relative to the corpus root (deterministic, and
stable when files are added elsewhere). Each split then takes whole files in hash order until its
share of max_chars is filled, which caps the corpus (the full standard library is about 30 MB, far
more than a short run sees). Text becomes windows of CONTEXT + 1 characters, cut without overlap;
x is a window's first CONTEXT characters and y the next character at each position.

The score is next-character accuracy: the share of positions whose most likely next character is
the right one (a classifier's accuracy over every position). Bits per character, the usual language
model figure, is the mean cross-entropy over the same positions divided by ln 2.
"""
from __future__ import annotations

import hashlib
import math
import os
import sysconfig
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nos_symbolic.tasks.data import DataError, Split, Splits

# Printable ASCII, tab and newline; anything else (non-ASCII text, form feeds) is one unknown symbol.
VOCAB: tuple[str, ...] = tuple("\t\n" + "".join(chr(c) for c in range(32, 127))) + ("<unk>",)
UNKNOWN = len(VOCAB) - 1
CONTEXT = 64  # characters a window predicts from: enough to see an identifier and its indentation
MAX_CHARS = 250_000  # a 5-epoch run of the default model then takes tens of seconds on one core
_LOOKUP = np.full(128, UNKNOWN, dtype=np.int64)
_LOOKUP[[ord(c) for c in VOCAB[:-1]]] = np.arange(len(VOCAB) - 1)


def stdlib_dir() -> Path:
    """The folder of the running Python's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_files(root: Path) -> list[Path]:
    """Every .py file under root, site-packages and __pycache__ left out, sorted by relative path."""
    found = []
    for folder, dirs, files in os.walk(root):
        # Pruning keeps the walk from descending into installed packages (torch alone is huge).
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "__pycache__"))
        found += [Path(folder) / f for f in files if f.endswith(".py")]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _place(relative: str) -> float:
    """A file's place in [0, 1): a hash of its relative path."""
    return int.from_bytes(hashlib.sha256(relative.encode()).digest()[:8], "big") / 2**64


def encode(text: str) -> np.ndarray:
    """Character ids of text (int64); characters outside VOCAB map to UNKNOWN."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return np.where(codes < 128, _LOOKUP[np.minimum(codes, 127)], UNKNOWN)


def decode(ids: np.ndarray | torch.Tensor) -> str:
    """Text of character ids; UNKNOWN prints as U+FFFD."""
    return "".join("\ufffd" if int(i) == UNKNOWN else VOCAB[int(i)] for i in ids)


def windows(ids: np.ndarray, context: int = CONTEXT) -> Split:
    """Non-overlapping windows of context + 1 ids: x (N, context), y (N, context) shifted by one."""
    n = (len(ids) - 1) // context
    if n < 1:
        raise DataError(f"a charlm split needs more than {context + 1} characters, got {len(ids)}")
    x = ids[: n * context].reshape(n, context)
    y = ids[1: n * context + 1].reshape(n, context)
    return Split(torch.from_numpy(x.copy()), torch.from_numpy(y.copy()))


def load_charlm(
    data_dir: str | os.PathLike | None = None,
    max_chars: int = MAX_CHARS,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Splits:
    """The corpus in data_dir (default: the standard library) split by file into train/val/test.

    A file goes to validation when its place (a hash of its relative path) is below val_fraction, to
    test when below val_fraction + test_fraction, else to training; each split keeps whole files in
    order of place until it holds its share of max_chars (the fractions of it; training the rest).
    """
    root = stdlib_dir() if data_dir is None else Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"charlm corpus folder {root} not found; pass a folder of .py files")
    if not (0 < val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
        raise DataError(f"val_fraction and test_fraction must be positive and sum below 1, "
                        f"got {val_fraction} and {test_fraction}")
    if max_chars < 1:
        raise DataError(f"max_chars must be positive, got {max_chars}")
    files = corpus_files(root)
    if not files:
        raise DataError(f"no .py files under {root}; charlm needs a folder of Python source files")
    bounds = {"val": val_fraction, "test": val_fraction + test_fraction, "train": 1.0}
    shares = {"val": val_fraction, "test": test_fraction, "train": 1 - val_fraction - test_fraction}
    texts: dict[str, list[str]] = {name: [] for name in bounds}
    sizes = dict.fromkeys(bounds, 0)
    for place, path in sorted((_place(p.relative_to(root).as_posix()), p) for p in files):
        name = next(n for n, bound in bounds.items() if place < bound)
        cap = math.ceil(shares[name] * max_chars)
        if sizes[name] >= cap:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")[: cap - sizes[name]]
        texts[name].append(text)
        sizes[name] += len(text) + 1  # and the newline that joins it to the next file
    empty = [name for name, size in sizes.items() if size <= CONTEXT]
    if empty:
        raise DataError(f"the corpus in {root} ({len(files)} .py files) leaves the {', '.join(empty)} "
                        f"split(s) nearly empty; charlm splits by file, so it needs more files")
    split = {name: windows(encode("\n".join(parts))) for name, parts in texts.items()}
    return Splits(train=split["train"], val=split["val"], test=split["test"], classes=VOCAB)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t: (B, T, d) -> (B, T, d)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        # (B, T, 3d) -> three (B, heads, T, d / heads)
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(LN(x)), then x + MLP(LN(x)) with a GELU hidden layer."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """A small GPT over characters: (B, T) ids -> (B, T, vocab) next-character logits.

    Token and learned position embeddings (d_model 64), two pre-norm blocks (4 heads, MLP 192),
    a final LayerNorm and a linear head: about 100k parameters, no dropout (short runs, and a
    training must be a pure function of its seed).
    """

    def __init__(self, vocab: int = len(VOCAB), context: int = CONTEXT, d_model: int = 64,
                 n_layers: int = 2, n_heads: int = 4, d_ff: int = 192) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(context, d_model)
        self.blocks = nn.Sequential(*(Block(d_model, n_heads, d_ff) for _ in range(n_layers)))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.tokens(ids) + self.positions(positions)  # (B, T, d)
        return self.head(self.ln(self.blocks(x)))


def bits_per_char(loss: float | None) -> float | None:
    """Bits per character of a mean cross-entropy in nats."""
    return None if loss is None else loss / math.log(2)
