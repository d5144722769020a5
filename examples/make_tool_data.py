"""Write examples/data/tools.json: tool-calling conversations for sftkit's tools example (docs/tools.md).

Three tools (weather lookup, calculator, currency conversion). Each conversation is a user request, the
assistant's call(s), the tool result(s) and the final answer; a few need no tool. Tool results are computed
here (the calculator evaluates its expression, rates are fixed, weather is a seeded draw per city), so every
answer is consistent with its result. Deterministic: the same seed writes the same file, byte for byte.

    python examples/make_tool_data.py                       # 400 conversations, seed 0
    python examples/make_tool_data.py --num-conversations 1000 --seed 1 -o /tmp/more.json
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "calculate", "description": "Evaluate an arithmetic expression",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]}}},
    {"type": "function", "function": {
        "name": "convert_currency", "description": "Convert an amount between currencies",
        "parameters": {"type": "object", "properties": {
            "amount": {"type": "number"}, "from_currency": {"type": "string"}, "to_currency": {"type": "string"}},
            "required": ["amount", "from_currency", "to_currency"]}}},
]
CITIES = ["Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Cairo", "Lima", "Oslo", "Seoul", "Sydney",
          "Toronto", "Nairobi", "Mumbai", "Dublin", "Vienna", "Prague", "Lisbon", "Athens", "Chicago", "Denver",
          "Boston", "Havana", "Hanoi", "Manila", "Zurich", "Warsaw", "Helsinki", "Istanbul", "Santiago"]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "foggy", "snowy"]
USD_RATES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 151.0, "CAD": 1.36, "CHF": 0.88}
CURRENCY_NAMES = {"USD": "dollars", "EUR": "euros", "GBP": "pounds", "JPY": "yen", "CAD": "Canadian dollars",
                  "CHF": "Swiss francs"}
WEATHER_ASKS = ["What's the weather in {city}?", "How is the weather in {city} right now?",
                "Is it raining in {city}?", "I'm flying to {city} tomorrow. What's the weather like there?",
                "Weather in {city}, please."]
UNIT_ASKS = ["What's the temperature in {city} in {unit}?", "How warm is it in {city}? Give it in {unit}."]
PAIR_ASKS = ["Compare the weather in {city} and {other}.", "What's the weather in {city} and in {other}?"]
CALC_ASKS = [("What is {a} times {b}?", "{a} * {b}", lambda a, b, c: a * b),
             ("Calculate {a} plus {b}.", "{a} + {b}", lambda a, b, c: a + b),
             ("What's {a} minus {b}?", "{a} - {b}", lambda a, b, c: a - b),
             ("What is {a} divided by {b}?", "{a} / {b}", lambda a, b, c: a // b),
             ("If I buy {a} packs of {b} pens, how many pens do I have?", "{a} * {b}", lambda a, b, c: a * b),
             ("What is {a} + {b} * {c}?", "{a} + {b} * {c}", lambda a, b, c: a + b * c)]
MONEY_ASKS = ["Convert {amount} {src} to {dst}.", "How much is {amount} {src_name} in {dst_name}?",
              "I have {amount} {src}. What is that in {dst}?"]
SMALL_TALK = [("Hi!", "Hello! I can check the weather, do arithmetic and convert currencies. What do you need?"),
              ("Thanks, that's all.", "You're welcome! Have a good day."),
              ("What can you do?", "I can look up the current weather in a city, calculate arithmetic "
                                   "expressions and convert amounts between currencies."),
              ("Who are you?", "I'm SmolLM, an assistant that can use a weather, calculator and currency tool.")]


def _weather(city: str, unit: str | None, seed: int) -> dict:
    draw = random.Random(f"{seed}:{city}")
    celsius = draw.randint(-5, 34)
    temperature = celsius if unit != "fahrenheit" else round(celsius * 9 / 5 + 32)
    return {"temperature": temperature, "unit": unit or "celsius", "condition": draw.choice(CONDITIONS)}


def _call(call_id: str, name: str, arguments: dict) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def _turns(user: str, calls: list[tuple[str, dict]], results: list[dict], answer: str) -> list[dict]:
    ids = [f"call_{k}" for k in range(1, len(calls) + 1)]
    messages = [{"role": "user", "content": user},
                {"role": "assistant", "content": None,
                 "tool_calls": [_call(i, name, args) for i, (name, args) in zip(ids, calls)]}]
    messages += [{"role": "tool", "tool_call_id": i, "content": json.dumps(r)} for i, r in zip(ids, results)]
    return messages + [{"role": "assistant", "content": answer}]


def _describe(w: dict, city: str) -> str:
    symbol = "°F" if w["unit"] == "fahrenheit" else "°C"
    return f"{w['temperature']}{symbol} and {w['condition']} in {city}"


def weather(rng: random.Random, seed: int) -> list[dict]:
    city = rng.choice(CITIES)
    kind = rng.random()
    if kind < 0.12:
        other = rng.choice([c for c in CITIES if c != city])
        results = [_weather(city, None, seed), _weather(other, None, seed)]
        return _turns(rng.choice(PAIR_ASKS).format(city=city, other=other),
                      [("get_weather", {"city": city}), ("get_weather", {"city": other})], results,
                      f"It is {_describe(results[0], city)}, and {_describe(results[1], other)}.")
    unit = rng.choice(["celsius", "fahrenheit"]) if kind < 0.4 else None
    ask = rng.choice(UNIT_ASKS if unit else WEATHER_ASKS).format(city=city, unit=unit)
    result = _weather(city, unit, seed)
    args = {"city": city, **({"unit": unit} if unit else {})}
    return _turns(ask, [("get_weather", args)], [result], f"It is {_describe(result, city)} right now.")


def calculate(rng: random.Random, seed: int) -> list[dict]:
    ask, expression, value_of = rng.choice(CALC_ASKS)
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
    if "/" in expression:
        a = b * rng.randint(2, 30)  # whole quotients
    expression, value = expression.format(a=a, b=b, c=c), value_of(a, b, c)
    return _turns(ask.format(a=a, b=b, c=c), [("calculate", {"expression": expression})], [{"result": value}],
                  f"The answer is {value}.")


def convert(rng: random.Random, seed: int) -> list[dict]:
    src, dst = rng.sample(sorted(USD_RATES), 2)
    amount = rng.choice([5, 10, 20, 25, 50, 75, 100, 150, 200, 250, 500, 1000])
    value = round(amount / USD_RATES[src] * USD_RATES[dst], 2)
    ask = rng.choice(MONEY_ASKS).format(amount=amount, src=src, dst=dst, src_name=CURRENCY_NAMES[src],
                                        dst_name=CURRENCY_NAMES[dst])
    args = {"amount": amount, "from_currency": src, "to_currency": dst}
    return _turns(ask, [("convert_currency", args)], [{"amount": value, "currency": dst}],
                  f"{amount} {src} is {value:.2f} {dst}.")


def small_talk(rng: random.Random, seed: int) -> list[dict]:
    question, answer = rng.choice(SMALL_TALK)
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


KINDS = [(weather, 0.35), (calculate, 0.3), (convert, 0.27), (small_talk, 0.08)]


def conversations(num: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    makers, weights = zip(*KINDS)
    return [{"messages": rng.choices(makers, weights)[0](rng, seed)} for _ in range(num)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-conversations", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).parent / "data" / "tools.json")
    args = parser.parse_args()
    rows = conversations(args.num_conversations, args.seed)
    # one conversation per line: the file reads as JSON (its `tools` apply to every row) and diffs line by line
    body = ",\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    args.output.write_text(f'{{"tools": {json.dumps(TOOLS)},\n"data": [\n{body}\n]}}\n', encoding="utf-8")
    print(f"wrote {len(rows)} conversations to {args.output}")


if __name__ == "__main__":
    main()
