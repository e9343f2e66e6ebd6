"""How who acted travels where an object cannot: in a background job's stored parameters."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from service.audit.service import SYSTEM, Actor


class ActorRef(BaseModel):
    """The :class:`Actor` who started a job, kept in its parameters for the audit entries it writes."""

    model_config = ConfigDict(frozen=True)

    user_id: int | None = None
    label: str = SYSTEM.label
    unit_id: int | None = None
    client: str | None = None

    @classmethod
    def of(cls, actor: Actor) -> ActorRef:
        return cls(user_id=actor.user_id, label=actor.label, unit_id=actor.unit_id, client=actor.client)

    def actor(self) -> Actor:
        return Actor(self.user_id, self.label or SYSTEM.label, self.unit_id, self.client)
