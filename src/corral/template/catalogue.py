"""Known prompt-template families and the detection of a GGUF's Jinja chat template.

When a model is created from a GGUF without a ``TEMPLATE``, Ollama picks a Go template by matching
the GGUF's ``tokenizer.chat_template`` (a Jinja2 string) against known chat formats, and copies the
family's default parameters (its stop words).  This module holds corral's catalogue of such
families -- Go ``text/template`` texts written for Ollama's template data (``.System``,
``.Messages`` with ``.Role``/``.Content``/``.ToolCalls``/``.ToolName``, ``.Tools``, ...) -- and
:func:`detect_family`, which recognises a family from the special markers its Jinja template uses.

Conventions shared by every template here:

* They are messages-style (they range over ``.Messages``), so multi-turn chats work.
* A conversation that ends with a user or tool message ends with the family's assistant
  generation prompt.  A conversation that ends with an assistant message leaves that message open
  (no end-of-turn marker, no new turn), so the model continues it (assistant prefill).
* Families that take the system prompt out of the message list (llama3, qwen, gemma, mistral,
  llama2) read ``.System``, which holds all system messages joined by a blank line, and skip
  system messages in ``.Messages``; the others render system messages in place.
* Tools and tool-call arguments are printed with the template function ``json``.
* No BOS token is written: the tokenizer adds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["FAMILIES", "FamilyTemplate", "detect_family", "get_family"]


@dataclass(frozen=True)
class FamilyTemplate:
    """A chat-format family: its name, its Go template and its default parameters.

    ``parameters`` is read-only (list-valued parameters such as ``stop`` are tuples) and left out
    of the hash.
    """

    name: str
    template: str
    parameters: Mapping[str, Any] = field(hash=False)


def _params(stop: tuple[str, ...], **extra: Any) -> Mapping[str, Any]:
    return MappingProxyType({"stop": stop, **extra})


# --- templates -------------------------------------------------------------------------------
#
# `$last` is true for the final message; `$gen` turns false when the final message is an
# assistant message, which is then left open instead of being followed by a generation prompt.

CHATML_TEMPLATE = """\
{{- $gen := true }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}<|im_start|>{{ .Role }}
{{ .Content }}
{{- if and $last (eq .Role "assistant") }}{{ $gen = false }}{{ else }}<|im_end|>
{{ end }}
{{- end }}
{{- if $gen }}<|im_start|>assistant
{{ end }}"""

QWEN_TEMPLATE = """\
{{- if or .System .Tools }}<|im_start|>system
{{ if .System }}{{ .System }}{{ if .Tools }}

{{ end }}{{ end }}
{{- if .Tools }}# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{{ json . }}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- $gen := true }}
{{- $prev := "" }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if and (eq $prev "tool") (ne .Role "tool") }}<|im_end|>
{{ end }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}
{{- range $j, $c := .ToolCalls }}{{ if or $j $m.Content }}
{{ end }}<tool_call>
{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}
</tool_call>
{{- end }}
{{- if $last }}{{ $gen = false }}{{ else }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}
{{- if ne $prev "tool" }}<|im_start|>user{{ end }}
<tool_response>
{{ .Content }}
</tool_response>
{{- if $last }}<|im_end|>
{{ end }}
{{- end }}
{{- $prev = .Role }}
{{- end }}
{{- if $gen }}<|im_start|>assistant
{{ end }}"""

LLAMA3_TEMPLATE = """\
{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>

{{ if .Tools }}You have access to the following functions. To call a function, please respond \
with JSON for a function call. Respond in the format {"name": function name, "parameters": \
dictionary of argument name and its value}. Do not use variables.

{{ range .Tools }}{{ json . }}

{{ end }}When you receive a tool call response, use the output to format an answer to the \
original user question.
{{- if $.System }}

{{ end }}
{{- end }}{{ .System }}<|eot_id|>
{{- end }}
{{- $gen := true }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>

{{ if .ToolCalls }}
{{- range $j, $c := .ToolCalls }}{{ if $j }}
{{ end }}{"name": "{{ .Function.Name }}", "parameters": {{ json .Function.Arguments }}}
{{- end }}
{{- else }}{{ .Content }}
{{- end }}
{{- if $last }}{{ $gen = false }}{{ else }}<|eot_id|>{{ end }}
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}
{{- end }}
{{- if $gen }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}"""

# Gemma has no system role: the system prompt opens the first user turn, as Gemma 3's own
# template does.  Gemma has no tool format, so tool messages are not rendered.
GEMMA_TEMPLATE = """\
{{- $system := .System }}
{{- $gen := true }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if $system }}{{ $system }}

{{ $system = "" }}{{ end }}{{ .Content }}<end_of_turn>
{{ else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}
{{- if $last }}{{ $gen = false }}{{ else }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}
{{- if $gen }}<start_of_turn>model
{{ end }}"""

# Mistral v0.3 ("v3" tokenizer): the tool list and the system prompt go with the last user
# message; the model generates right after `[/INST]` or `[/TOOL_RESULTS]`.
MISTRAL_TEMPLATE = """\
{{- $lastUser := -1 }}
{{- range $i, $m := .Messages }}{{ if eq .Role "user" }}{{ $lastUser = $i }}{{ end }}{{ end }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}
{{- if and $.Tools (eq $i $lastUser) }}[AVAILABLE_TOOLS] {{ json $.Tools }}[/AVAILABLE_TOOLS]
{{- end }}[INST] {{ if and $.System (eq $i $lastUser) }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .ToolCalls }}[TOOL_CALLS] [
{{- range $j, $c := .ToolCalls }}{{ if $j }}, {{ end -}}
{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}
{{- end }}]
{{- else }} {{ .Content }}
{{- end }}
{{- if not $last }}</s>{{ end }}
{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ .Content }}}[/TOOL_RESULTS]
{{- end }}
{{- end }}"""

LLAMA2_TEMPLATE = """\
{{- $system := .System }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}[INST] {{ if $system }}<<SYS>>
{{ $system }}
<</SYS>>

{{ $system = "" }}{{ end }}{{ .Content }} [/INST]
{{- else if eq .Role "assistant" }} {{ .Content }}{{ if not $last }} </s><s>{{ end }}
{{- end }}
{{- end }}"""

PHI3_TEMPLATE = """\
{{- $gen := true }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}<|{{ .Role }}|>
{{ .Content }}
{{- if and $last (eq .Role "assistant") }}{{ $gen = false }}{{ else }}<|end|>
{{ end }}
{{- end }}
{{- if $gen }}<|assistant|>
{{ end }}"""

ZEPHYR_TEMPLATE = """\
{{- $gen := true }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}<|{{ .Role }}|>
{{ .Content }}
{{- if and $last (eq .Role "assistant") }}{{ $gen = false }}{{ else }}</s>
{{ end }}
{{- end }}
{{- if $gen }}<|assistant|>
{{ end }}"""

_CHATML_STOP = ("<|im_start|>", "<|im_end|>")

# Stop words are those of Ollama's catalogue for the same family.  (Ollama's mistral-instruct
# entry carries the ChatML stop words; they are kept for parity.)
FAMILIES: tuple[FamilyTemplate, ...] = (
    FamilyTemplate("chatml", CHATML_TEMPLATE, _params(_CHATML_STOP)),
    FamilyTemplate("qwen", QWEN_TEMPLATE, _params(_CHATML_STOP)),
    FamilyTemplate(
        "llama3",
        LLAMA3_TEMPLATE,
        _params(("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    ),
    FamilyTemplate("gemma", GEMMA_TEMPLATE, _params(("<start_of_turn>", "<end_of_turn>"))),
    FamilyTemplate("gemma3", GEMMA_TEMPLATE, _params(("<end_of_turn>",), temperature=0.1)),
    FamilyTemplate("mistral", MISTRAL_TEMPLATE, _params(_CHATML_STOP)),
    FamilyTemplate(
        "llama2", LLAMA2_TEMPLATE, _params(("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"))
    ),
    FamilyTemplate(
        "phi-3", PHI3_TEMPLATE, _params(("<|end|>", "<|system|>", "<|user|>", "<|assistant|>"))
    ),
    FamilyTemplate(
        "zephyr", ZEPHYR_TEMPLATE, _params(("<|system|>", "</s>", "<|user|>", "<|assistant|>"))
    ),
)

# Ollama's catalogue names (and a few common spellings) of the same families.
_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "llama3-instruct": "llama3",
        "gemma-instruct": "gemma",
        "gemma2": "gemma",
        "gemma3-instruct": "gemma3",
        "mistral-instruct": "mistral",
        "llama2-chat": "llama2",
        "phi3": "phi-3",
        "qwen2": "qwen",
        "qwen2.5": "qwen",
    }
)


def get_family(name: str) -> FamilyTemplate:
    """Return the family called ``name`` (or one of Ollama's names for it); KeyError if none."""
    wanted = _ALIASES.get(name, name)
    for family in FAMILIES:
        if family.name == wanted:
            return family
    raise KeyError(f"unknown template family: {name!r}")


# --- detection -------------------------------------------------------------------------------

_TOOL_CALL_MARKERS = ("<tool_call>", "<tools>")
# Chat formats that share a marker with a family here but are laid out differently.
_FOREIGN_MARKERS = (
    "<|im_sep|>",  # phi-4: ChatML tokens with a separator token
    "[gMASK]",  # ChatGLM / GLM-4: <|user|> and <|assistant|> without <|end|>
)


def _detect_name(text: str) -> str | None:
    if any(marker in text for marker in _FOREIGN_MARKERS):
        return None
    if "<|im_start|>" in text:
        return "qwen" if any(marker in text for marker in _TOOL_CALL_MARKERS) else "chatml"
    if "<|start_header_id|>" in text:
        return "llama3"
    if "<start_of_turn>" in text:
        # Gemma 1 and 2 refuse a system message; Gemma 3 folds it into the first user turn.
        return "gemma" if "System role not supported" in text else "gemma3"
    if "[INST]" in text:
        return "llama2" if "<<SYS>>" in text else "mistral"
    if "<|user|>" in text or "<|assistant|>" in text:
        return "phi-3" if "<|end|>" in text else "zephyr"
    return None


def detect_family(chat_template: str | None) -> FamilyTemplate | None:
    """Recognise the family of a GGUF's Jinja ``tokenizer.chat_template``; None if unknown.

    Detection looks for the special tokens the Jinja template writes (``<|im_start|>`` ChatML,
    with ``<tool_call>``/``<tools>`` the Qwen 2.5 tool format; ``<|start_header_id|>`` Llama 3;
    ``<start_of_turn>`` Gemma; ``[INST]`` Mistral, with ``<<SYS>>`` Llama 2; ``<|user|>`` or
    ``<|assistant|>`` with ``<|end|>`` Phi-3, without it Zephyr).
    """
    if not chat_template or not chat_template.strip():
        return None
    name = _detect_name(chat_template)
    return None if name is None else get_family(name)
