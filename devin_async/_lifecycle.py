"""The session lifecycle, as one table.

Rules of this file: every question "is this session done / settled / about to change?" is answered
here and nowhere else. A status the table does not know is treated as active (keep polling).

    status      phase      meaning
    new         starting   accepted, not yet on a machine
    claimed     starting   a machine is assigned (undocumented; inferred)
    resuming    starting   waking from suspended
    running     active     working; settled when status_detail says it waits or finished
    suspended   settled    asleep; a message wakes it
    exit        terminal   ended; cannot resume
    error       terminal   ended in error
"""

from __future__ import annotations

import enum

from ._enums import SessionStatus, StatusDetail

__all__ = ["Phase", "is_settled", "is_terminal", "phase_of"]


class Phase(enum.Enum):
    """How a status behaves for waiting and polling."""

    STARTING = "starting"  # about to change: poll at the fastest cadence
    ACTIVE = "active"  # may run for a long time: back off
    SETTLED = "settled"  # nothing more happens without the user
    TERMINAL = "terminal"  # nothing more happens at all


PHASES: dict[str, Phase] = {
    SessionStatus.NEW: Phase.STARTING,
    SessionStatus.CLAIMED: Phase.STARTING,
    SessionStatus.RESUMING: Phase.STARTING,
    SessionStatus.RUNNING: Phase.ACTIVE,
    SessionStatus.SUSPENDED: Phase.SETTLED,
    SessionStatus.EXIT: Phase.TERMINAL,
    SessionStatus.ERROR: Phase.TERMINAL,
}

#: `running` with one of these details is settled: Devin waits for the user or is done.
SETTLED_RUNNING_DETAILS: frozenset[str] = frozenset(
    {StatusDetail.FINISHED, StatusDetail.WAITING_FOR_USER, StatusDetail.WAITING_FOR_APPROVAL}
)


def phase_of(status: str, status_detail: str | None) -> Phase:
    """Return the phase of a (status, status_detail) pair; unknown statuses are ACTIVE."""
    phase = PHASES.get(status, Phase.ACTIVE)
    if status == SessionStatus.RUNNING and status_detail in SETTLED_RUNNING_DETAILS:
        return Phase.SETTLED
    return phase


def is_terminal(status: str) -> bool:
    """Return whether a status is final (exit or error)."""
    return PHASES.get(status) is Phase.TERMINAL


def is_settled(status: str, status_detail: str | None) -> bool:
    """Return whether nothing more happens without the user."""
    return phase_of(status, status_detail) in (Phase.SETTLED, Phase.TERMINAL)
