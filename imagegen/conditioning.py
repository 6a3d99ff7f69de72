"""Prompt embeddings for long and weighted prompts (single text-encoder pipelines:
SD 1.x and 2.x), the way the popular web UIs make them.

The prompt is parsed for emphasis and ``BREAK``; its tokens are cut into chunks of
75 (at a ``BREAK``, else at the last comma within 20 tokens of the limit, else at
75); each chunk is framed with start/end tokens, padded to 77 and encoded; each
token's hidden state is scaled by its weight and the chunk's mean is restored;
chunks are concatenated. The negative prompt is padded with empty chunks to the
same number of chunks, since classifier-free guidance needs both to match (the
most common error with long prompts).
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime import CONTENT_TOKENS, clip_clean

from .emphasis import BREAK, Piece, parse

COMMA_LOOKBACK = 20


@dataclass
class TokenChunk:
    ids: list[int]
    weights: list[float]


def tokenize_chunks(prompt: str, tokenizer) -> list[TokenChunk]:
    """Token ids and weights of ``prompt`` cut into chunks of at most 75."""
    comma = tokenizer(",", add_special_tokens=False)["input_ids"][-1]
    chunks: list[TokenChunk] = [TokenChunk([], [])]

    def new_chunk() -> None:
        if chunks[-1].ids:
            chunks.append(TokenChunk([], []))

    for item in parse(prompt):
        if not isinstance(item, Piece):
            new_chunk()
            continue
        text = clip_clean(item.text)
        if not text:
            continue
        for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
            current = chunks[-1]
            if len(current.ids) == CONTENT_TOKENS:
                cut = max((i for i, t in enumerate(current.ids) if t == comma and i >= CONTENT_TOKENS - COMMA_LOOKBACK), default=-1)
                if cut >= 0:  # move the words after the last comma to the next chunk
                    moved = TokenChunk(current.ids[cut + 1 :], current.weights[cut + 1 :])
                    del current.ids[cut + 1 :], current.weights[cut + 1 :]
                    chunks.append(moved)
                else:
                    chunks.append(TokenChunk([], []))
            chunks[-1].ids.append(token)
            chunks[-1].weights.append(item.weight)
    return chunks


def encode_chunks(chunks: list[TokenChunk], tokenizer, text_encoder, device):
    """(1, 77 * len(chunks), hidden) weighted hidden states."""
    import torch

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    outputs = []
    for chunk in chunks:
        ids = [bos] + chunk.ids + [eos]
        weights = [1.0] + chunk.weights + [1.0]
        ids += [pad] * (CONTENT_TOKENS + 2 - len(ids))
        weights += [1.0] * (CONTENT_TOKENS + 2 - len(weights))
        with torch.no_grad():
            hidden = text_encoder(torch.tensor([ids], device=device))[0]
        w = torch.tensor(weights, device=device, dtype=hidden.dtype)[None, :, None]
        if not torch.all(w == 1):
            original_mean = hidden.float().mean()
            hidden = hidden * w
            hidden = hidden * (original_mean / hidden.float().mean()).to(hidden.dtype)
        outputs.append(hidden)
    return torch.cat(outputs, dim=1)


def prompt_embeddings(prompt: str, negative: str, tokenizer, text_encoder, device):
    """(prompt_embeds, negative_prompt_embeds, info) of equal length."""
    positive = tokenize_chunks(prompt, tokenizer)
    negative_chunks = tokenize_chunks(negative or "", tokenizer)
    while len(negative_chunks) < len(positive):
        negative_chunks.append(TokenChunk([], []))
    while len(positive) < len(negative_chunks):
        positive.append(TokenChunk([], []))
    info = {"chunks": len(positive), "tokens": sum(len(c.ids) for c in positive),
            "negative_tokens": sum(len(c.ids) for c in negative_chunks)}
    return (encode_chunks(positive, tokenizer, text_encoder, device),
            encode_chunks(negative_chunks, tokenizer, text_encoder, device), info)


def is_plain(prompt: str) -> bool:
    """No weights, no BREAK."""
    return all(isinstance(p, Piece) and p.weight == 1.0 for p in parse(prompt)) and BREAK not in prompt
