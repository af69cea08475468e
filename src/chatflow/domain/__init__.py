"""The domain: what a workflow and an instance are, and the rules of every step.

Models (``models``), the frozen workflow definition (``definition``), schema validation
(``schema``, ``dialect``), ``conditions``, routing and gates (``transitions``), what
each operation changes (``lifecycle``, with its one action table ``ALLOWED``), the
merged log (``history``) and derived status (``status``, ``counts``).

It imports only the standard library and ChatFlow's base modules (``errors``,
``_validation``, ``_text``, ``_logger``): nothing from storage, the engine or a front
end (``tests/test_layers.py`` checks it), so every layer above can build on it.
"""
