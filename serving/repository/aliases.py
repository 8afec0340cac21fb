"""Alias table of one model: which version each alias points at, and where it pointed before."""

from pydantic import BaseModel, ConfigDict, Field

ALIAS_FILE = "aliases.json"
DEFAULT_ALIAS = "production"


class AliasTable(BaseModel):
    """Persisted as `<model>/aliases.json`. `history[alias]` ends with the current version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    aliases: dict[str, int] = {}
    history: dict[str, list[int]] = Field(default_factory=dict)

    def pointed_at(self, alias: str, version: int) -> "AliasTable":
        trail = [*self.history.get(alias, []), version][-50:]
        return AliasTable(
            aliases={**self.aliases, alias: version}, history={**self.history, alias: trail}
        )

    def without(self, alias: str) -> "AliasTable":
        aliases = {key: value for key, value in self.aliases.items() if key != alias}
        history = {key: value for key, value in self.history.items() if key != alias}
        return AliasTable(aliases=aliases, history=history)

    def rolled_back(self, alias: str, existing: set[int]) -> tuple["AliasTable", int] | None:
        """Point `alias` at the most recent earlier version that still exists, if any."""
        trail = list(self.history.get(alias, []))
        current = self.aliases.get(alias)
        while trail and trail[-1] == current:
            trail.pop()
        while trail and trail[-1] not in existing:
            trail.pop()
        if not trail:
            return None
        target = trail[-1]
        return AliasTable(
            aliases={**self.aliases, alias: target}, history={**self.history, alias: trail}
        ), target
