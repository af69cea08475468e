"""ChatCoder's engine: the ``WorkflowEngine`` its code imports from this module.

ChatCoder was written against ChatFlow "v1.1" and calls it by that version's names.
This class is ChatFlow's own ``WorkflowEngine`` with those names added, so one object
answers both the seed's calls and ChatCoder's (docs/chatcoder.md):

- ``start_workflow_instance(schema_name=...)`` finds ``<storage_dir>/schemas/<name>.yaml``
  and returns a ``WorkflowStartResult`` (the id string, with ``initial_phase`` and
  ``created_at``); v1.1's ``condition``/``fallback_phase`` schemas load through
  ``chatflow.domain.dialect``.
- ``get_workflow_state`` and ``get_workflow_status_info`` give v1.1's views, ``None`` for
  an unknown id.
- Trigger data is merged into the variables (``merge_trigger_data: flat``), as v1.1 always
  did, unless a schema chooses another mode. This is the one behaviour that differs from
  ``chatflow.WorkflowEngine``, whose default keeps the seed's rule (variables untouched).
"""

from __future__ import annotations

from chatflow.core import engine
from chatflow.domain.models import WorkflowState, WorkflowStatusInfo
from chatflow.domain.status import status_summary, workflow_state


class WorkflowEngine(engine.WorkflowEngine):
    """``chatflow.WorkflowEngine`` with ChatCoder's v1.1 names (see the module docstring)."""

    default_merge_trigger_data = "flat"

    def get_workflow_state(self, instance_id: str) -> WorkflowState | None:
        """The instance as v1.1's ``WorkflowState``, or ``None`` if no instance has that id."""
        state = self.get_workflow_instance_status(instance_id)
        return None if state is None else workflow_state(state)

    def get_workflow_status_info(self, instance_id: str) -> WorkflowStatusInfo | None:
        """The instance's short status (v1.1's ``WorkflowStatusInfo``), or ``None`` if unknown."""
        state = self.get_workflow_instance_status(instance_id)
        return None if state is None else status_summary(state)
