"""Anthropic's Messages API (``/v1/messages``, ``/v1/messages/count_tokens``) on the native flow.

:mod:`.protocol` holds the wire models (requests as Anthropic types them, answers, stream
events and errors), :mod:`.convert` the pure mapping to a native chat request and back, and
:mod:`.events` the state machine that turns native chat chunks into Anthropic's stream events.
"""
