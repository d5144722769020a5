import math

import pytest
import torch

from sftkit.eval.perplexity import score_texts
from sftkit.eval.tasks import TextItem

TEXTS = ["The fox ran over the hill.", "A cat sat on the mat and slept all afternoon, dreaming.", "Rain."]


def reference_nll(model, tokenizer, text: str) -> tuple[float, int]:
    ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False).input_ids
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    return -sum(logprobs[i - 1, ids[i]].item() for i in range(1, len(ids))), len(ids) - 1


def test_per_document_nll_equals_an_unbatched_reference(tokenizer):
    from tests.helpers import make_tiny_model

    model = make_tiny_model(seed=2).double().eval()
    items = [TextItem(t, "t.txt", i) for i, t in enumerate(TEXTS, 1)]
    values, rows = score_texts(model, tokenizer, items, batch_size=2)
    for text, nll, num_tokens, row in zip(TEXTS, values["nll"], values["num_tokens"], rows):
        ref_nll, ref_tokens = reference_nll(model, tokenizer, text)
        assert nll == pytest.approx(ref_nll, abs=1e-9, rel=0)
        assert num_tokens == ref_tokens and row["prompt"] == text and "truncated" not in row
    # a random model over a 49152-token vocabulary is close to uniform: perplexity near the vocabulary size
    ppl = math.exp(sum(values["nll"]) / sum(values["num_tokens"]))
    assert 20000 < ppl < 120000


def test_documents_longer_than_the_context_keep_their_first_tokens(tokenizer):
    from tests.helpers import make_tiny_model

    model = make_tiny_model().eval()
    model.config.max_position_embeddings = 16
    values, rows = score_texts(model, tokenizer, [TextItem("word " * 50, "t.txt", 1)])
    assert values["num_tokens"] == [15.0] and rows[0]["truncated"] is True
