"""The service layer between the routes and the scheduler. A request crosses it in one
direction, one module per step:

1. :mod:`.models` resolves the model (its view is cached by digest);
2. :mod:`.request` fixes a typed job (options, load spec, sampling, keep_alive, think);
3. :mod:`.render` renders and tokenizes the prompt;
4. :mod:`.pipeline` holds a runner and a slot (:mod:`corral.scheduler`) and generates;
5. :mod:`.decode` turns runner events into text, tool calls and metrics (:mod:`.outputs`).

:mod:`.generate`, :mod:`.chat` and :mod:`.embed` are the native endpoints on that flow
(:mod:`.native` builds their wire chunks), :mod:`.catalog` answers tags, show and ps; the
``/v1`` routes adapt the native answers.
"""

from corral.service.context import Service

__all__ = ["Service"]
