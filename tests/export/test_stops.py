"""The stop check's contract, without llama.cpp: a reply `sftkit generate` ends must end in llama.cpp too; a
reply both cut at the token limit is not the export's fault."""

from types import SimpleNamespace

from sftkit.export import llamacpp

END = 2


class ScriptedLlama:
    """Greedy continuations given per prompt (the first prompt id picks the script)."""

    def __init__(self, scripts: dict[int, list[int]]):
        self.scripts = scripts

    def reset(self):
        pass

    def generate(self, ids, **_options):
        yield from self.scripts[ids[0]]


class Tok:
    def decode(self, ids, skip_special_tokens=True):
        return " ".join(map(str, ids))


def _check(monkeypatch, llama_scripts, hf):
    monkeypatch.setattr(llamacpp, "is_end_of_generation", lambda llm, token: token == END)
    replies = [SimpleNamespace(token_ids=ids, text=" ".join(map(str, ids)), finish_reason=reason) for ids, reason in hf]
    return llamacpp.check_replies(ScriptedLlama(llama_scripts), Tok(), [[k] for k in llama_scripts], replies, "f16",
                                  [END], max_new_tokens=3)


def test_a_reply_both_cut_at_the_limit_passes_and_is_counted(monkeypatch):
    replies, stops = _check(monkeypatch, {0: [5, END], 1: [7, 7, 7, 7]}, [([5], "stop"), ([7, 7, 7], "length")])
    assert replies["passed"] is True and replies["identical_tokens"] == 1.0
    assert stops["passed"] is True and stops["missed_stops"] == []
    assert stops["stopped_by_itself"] == stops["sftkit_generate_stopped"] == 1


def test_running_past_an_end_that_sftkit_generate_stops_on_fails(monkeypatch):
    _, stops = _check(monkeypatch, {0: [5, 6, 6, 6], 1: [7, END]}, [([5], "stop"), ([7], "stop")])
    assert stops["passed"] is False and stops["missed_stops"] == [0] and stops["stopped_by_itself"] == 1
