"""The base class every config section derives from: unknown keys and wrong types are errors."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A typed, strict config section (no coercion of "3" to 3, no unknown keys, and no NaN or
    infinite floats: ``train.lr=.inf`` would otherwise train to all-NaN weights)."""

    model_config = ConfigDict(
        extra="forbid", strict=True, validate_assignment=True, allow_inf_nan=False
    )
