"""The process-wide engine behind ``chatflow.engine``, created when first asked for.

A module of its own because Python imports a module once, under its import lock: the
first thread to touch ``chatflow.engine`` creates the engine, every other thread gets
that same object, and ``import chatflow`` pays for none of it.
"""

from chatflow.core.engine import WorkflowEngine

engine = WorkflowEngine()
