"""Multiple-choice scoring by the summed log-probability of each choice's tokens after the context.

Each item defines the text scored for choice i, `context + delimiter + choices[i]` (the delimiter is " " for
lm-eval-style tasks; BIG-bench tasks put the single space into the context, `sftkit.eval.tasks`). Tokenisation
follows lm-evaluation-harness 0.4 (`_encode_pair`): trailing whitespace of the context moves to the
continuation; the context is encoded alone, the continuation is the tail of encoding the whole text; an empty
context is the BOS (else EOS) token. `acc` picks the highest summed log-probability, `acc_norm` the highest
log-probability divided by the choice's length in characters; ties go to the first choice, as with numpy's
argmax.

Speed: questions are batched; each batch runs the contexts once (left-padded, explicit positions) and
reuses their key/value cache for all choices of each question, which are scored together in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sftkit.data.batching import longest_first, pad_rows
from sftkit.eval.tasks import ChoiceItem


@dataclass
class ChoiceScore:
    logprobs: list[float]  # summed log-probability of each continuation
    pick: int
    pick_norm: int
    context_truncated: bool = False


def prefix_token_id(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def _encode(tokenizer, text: str) -> list[int]:
    # the tokenizer's own special-token default, except when the text already starts with BOS (as lm-eval)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(text)


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) exactly as lm-evaluation-harness builds them for a causal model."""
    if not context:
        return [prefix_token_id(tokenizer)], _encode(tokenizer, continuation)
    num_spaces = len(context) - len(context.rstrip())
    if num_spaces:
        context, continuation = context[:-num_spaces], context[-num_spaces:] + continuation
    whole = _encode(tokenizer, context + continuation)
    context_ids = _encode(tokenizer, context)
    return context_ids, whole[len(context_ids):]


def encode_item(tokenizer, item: ChoiceItem) -> tuple[list[int], list[list[int]]]:
    """(context ids, continuation ids of each choice): the tokens scored for `item`."""
    pairs = [encode_pair(tokenizer, item.context, item.delimiter + choice) for choice in item.choices]
    if any(ctx != pairs[0][0] for ctx, _ in pairs):  # cannot happen: the context is the same text for every choice
        raise RuntimeError("context tokenisation differs between choices")
    return pairs[0][0], [cont for _, cont in pairs]


def pick_choices(logprobs: list[float], choices: list[str]) -> tuple[int, int]:
    """(argmax of log-probability, argmax of log-probability per character)."""
    lls = np.asarray(logprobs, dtype=np.float64)
    lengths = np.asarray([float(len(c)) for c in choices])
    return int(np.argmax(lls)), int(np.argmax(lls / lengths))


def cache_argument(model) -> str:
    """The forward() keyword for a key/value cache: `cache` (transformers >= 5.2x) or `past_key_values`."""
    import inspect

    from sftkit.models import unwrap

    return "cache" if "cache" in inspect.signature(unwrap(model).forward).parameters else "past_key_values"


def output_cache(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(targets) under `logits` (..., vocab), as float64 on the CPU; computed in at least float32
    (float64 logits stay float64, so tests can compare tightly).

    Same value as gathering from `log_softmax`, without materialising a second vocabulary-sized tensor.
    """
    logits = logits if logits.dtype == torch.float64 else logits.float()
    picked = logits.gather(-1, targets.to(logits.device)[..., None])[..., 0]
    return (picked - torch.logsumexp(logits, dim=-1)).double().cpu()


def _max_positions(model) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "max_position_embeddings", None)


@torch.no_grad()
def _score_batch(model, pad_id: int, batch: list[tuple[list[int], list[list[int]]]]) -> list[list[float]]:
    device = next(model.parameters()).device
    ctx_lens = [len(ctx) for ctx, _ in batch]
    ctx_ids, ctx_mask = pad_rows([ctx for ctx, _ in batch], pad_id, left=True)
    positions = (ctx_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ctx_ids.to(device), attention_mask=ctx_mask.to(device),
                position_ids=positions.to(device), use_cache=True, logits_to_keep=1)

    owner = [q for q, (_, conts) in enumerate(batch) for _ in conts]
    conts = [c for _, cs in batch for c in cs]
    cache = output_cache(out)
    cache.reorder_cache(torch.tensor(owner, device=device))
    cont_ids, cont_mask = pad_rows(conts, pad_id)
    length = cont_ids.shape[1]
    index = torch.tensor(owner)
    # the first continuation token is predicted by the context's last position
    scores = token_logprobs(out.logits[:, -1][index.to(device)], cont_ids[:, 0])
    if length > 1:
        mask = torch.cat([ctx_mask[index], cont_mask], dim=1)
        cont_positions = torch.tensor([ctx_lens[q] for q in owner])[:, None] + torch.arange(length)[None]
        logits = model(input_ids=cont_ids.to(device), attention_mask=mask.to(device),
                       position_ids=cont_positions.to(device), use_cache=True, **{cache_argument(model): cache}).logits
        scores += (token_logprobs(logits[:, :-1], cont_ids[:, 1:]) * cont_mask[:, 1:]).sum(-1)
    result, row = [], 0
    for _, cs in batch:
        result.append(scores[row:row + len(cs)].tolist())
        row += len(cs)
    return result


def score_items(model, tokenizer, items: list[ChoiceItem], batch_size: int = 8) -> list[ChoiceScore]:
    """Score every choice of every item; `batch_size` is questions per forward pass."""
    encoded, truncated = [], []
    limit = _max_positions(model)
    for item in items:
        ctx, conts = encode_item(tokenizer, item)
        if any(not c for c in conts):
            raise RuntimeError(f"{item.source}:{item.line}: a choice encodes to no tokens")
        cut = False
        if limit is not None and len(ctx) + max(map(len, conts)) > limit:
            ctx, cut = ctx[-(limit - max(map(len, conts))):], True  # keep the end of the context, as lm-eval
        encoded.append((ctx, conts))
        truncated.append(cut)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix_token_id(tokenizer)
    # longest contexts first, so each batch pads little; results go back to the input order
    logprobs: list[list[float]] = [[] for _ in items]
    for chunk in longest_first([len(ctx) for ctx, _ in encoded], batch_size):
        for i, lls in zip(chunk, _score_batch(model, pad_id, [encoded[i] for i in chunk])):
            logprobs[i] = lls
    scores = []
    for item, lls, cut in zip(items, logprobs, truncated):
        pick, pick_norm = pick_choices(lls, item.choices)
        scores.append(ChoiceScore(lls, pick, pick_norm, cut))
    return scores


def choice_predictions(items: list[ChoiceItem], scores: list[ChoiceScore]) -> tuple[dict, list[dict]]:
    """Per-example `acc`/`acc_norm` values and the prediction rows: `prompt + delimiter + choices[i]` is the
    text whose continuation tokens give `choice_logprobs[i]`."""
    acc = [float(s.pick in item.correct) for item, s in zip(items, scores)]
    acc_norm = [float(s.pick_norm in item.correct) for item, s in zip(items, scores)]
    rows = [{"source": item.source, "line": item.line, "prompt": item.context, "delimiter": item.delimiter,
             "choices": item.choices, "choice_logprobs": s.logprobs, "pick": s.pick, "pick_norm": s.pick_norm,
             "correct": item.correct, "acc": a, "acc_norm": an,
             **({"context_truncated": True} if s.context_truncated else {})}
            for item, s, a, an in zip(items, scores, acc, acc_norm)]
    return {"acc": acc, "acc_norm": acc_norm}, rows
