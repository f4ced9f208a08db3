"""Live captions in the terminal (rich): finals fixed, the current partial rewritten in place."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Group
from rich.panel import Panel
from rich.text import Text

from .events import CallEnded, CallStarted, Event, Transcript

COLORS = {"customer": "cyan", "agent": "green", "mixed": "white"}


@dataclass
class _Call:
    call_id: str
    lines: list[tuple[str, str, int]] = field(default_factory=list)  # (channel, text, start_ms)
    partial: dict[str, str] = field(default_factory=dict)
    ended: str = ""


class CaptionBoard:
    """Feed it events; ``render()`` gives the current screen. Keeps the last ``max_lines`` finals per call."""

    def __init__(self, max_lines: int = 12) -> None:
        self.max_lines = max_lines
        self.calls: dict[str, _Call] = {}

    def update(self, event: Event) -> None:
        call = self.calls.setdefault(event.call_id, _Call(event.call_id))
        if isinstance(event, Transcript):
            if event.is_final:
                call.partial.pop(event.channel, None)
                if event.text:
                    call.lines.append((event.channel, event.text, event.start_ms))
            else:
                call.partial[event.channel] = event.text
        elif isinstance(event, CallEnded):
            call.ended = f"ended ({event.reason}, {event.duration_ms / 1000:.1f} s, {event.finals} finals)"
        elif isinstance(event, CallStarted):
            call.ended = ""

    def render(self) -> Group:
        panels = []
        for call in self.calls.values():
            body = Text()
            for channel, text, start_ms in call.lines[-self.max_lines :]:
                body.append(f"{start_ms / 1000:6.1f}s ", style="dim")
                body.append(f"{channel:>8}: ", style=f"bold {COLORS.get(channel, 'white')}")
                body.append(text + "\n")
            for channel, text in call.partial.items():
                body.append("   ...  ", style="dim")
                body.append(f"{channel:>8}: ", style=f"bold {COLORS.get(channel, 'white')}")
                body.append(text + "\n", style="italic dim")
            title = f"call {call.call_id}" + (f" - {call.ended}" if call.ended else " - live")
            panels.append(Panel(body, title=title, border_style="blue" if not call.ended else "dim"))
        return Group(*panels)
