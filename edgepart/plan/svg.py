"""SVG elements as text, for the plan picture. Coordinates and sizes in px; numbers written with one
decimal so the same picture is the same bytes. Text width is estimated from the character count (no
font metrics): sans-serif averages about 0.6 em a character (DejaVu's digits 0.64), and CHAR_EM errs wide."""

from __future__ import annotations

from html import escape

CHAR_EM = 0.64  # estimated width of one character, in font sizes (em)
BOLD_EM = 0.7


def text_width(content: str, size: float, bold: bool = False) -> float:
    """Estimated width of `content` in px at font size `size` px."""
    return len(content) * size * (BOLD_EM if bold else CHAR_EM)


def chars_within(width: float, size: float, bold: bool = False) -> int:
    """How many characters fit in `width` px at font size `size` px."""
    return max(0, int(width / (size * (BOLD_EM if bold else CHAR_EM))))


def n(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def text(x: float, y: float, content: str, size: float = 11, *, anchor: str = "start", bold: bool = False,
         fill: str = "#222", halo: bool = False, css: str = "") -> str:
    """A text line with its baseline at y; `halo` paints a white outline under it so lines behind it
    do not cross the letters."""
    extra = ' font-weight="bold"' if bold else ""
    extra += f' text-anchor="{anchor}"' if anchor != "start" else ""
    extra += ' stroke="white" stroke-width="3" stroke-linejoin="round" paint-order="stroke"' if halo else ""
    extra += f' class="{css}"' if css else ""
    return f'<text x="{n(x)}" y="{n(y)}" font-size="{n(size)}" fill="{fill}"{extra}>{escape(content)}</text>'


def rect(x: float, y: float, w: float, h: float, *, fill: str, stroke: str = "none", radius: float = 0,
         opacity: float = 1.0, dash: str = "", css: str = "") -> str:
    extra = f' rx="{n(radius)}"' if radius else ""
    extra += f' fill-opacity="{opacity:g}"' if opacity != 1.0 else ""
    extra += f' stroke-dasharray="{dash}"' if dash else ""
    extra += f' class="{css}"' if css else ""
    return (f'<rect x="{n(x)}" y="{n(y)}" width="{n(w)}" height="{n(h)}" fill="{fill}" '
            f'stroke="{stroke}"{extra}/>')


def path(d: str, *, stroke: str, width: float = 1.2, dash: str = "", arrow: str = "") -> str:
    """An unfilled path; `arrow` names a marker defined by `arrow_marker`."""
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    extra += f' marker-end="url(#{arrow})"' if arrow else ""
    return f'<path d="{d}" fill="none" stroke="{stroke}" stroke-width="{n(width)}"{extra}/>'


def line(x1: float, y1: float, x2: float, y2: float) -> str:
    """Path data of a straight segment."""
    return f"M{n(x1)} {n(y1)} L{n(x2)} {n(y2)}"


def curve(x1: float, y1: float, x2: float, y2: float, bulge: float) -> str:
    """Path data of a cubic curve between two points bowing `bulge` px to the left (the curve's
    farthest point is 3/4 of that)."""
    return f"M{n(x1)} {n(y1)} C{n(x1 - bulge)} {n(y1)} {n(x2 - bulge)} {n(y2)} {n(x2)} {n(y2)}"


def arrow_marker(name: str, colour: str) -> str:
    return (f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="{colour}"/></marker>')


def group(children: list[str], tooltip: str = "", css: str = "") -> str:
    """A <g> with a <title> (shown as a tooltip) and the children."""
    head = f'<g class="{css}">' if css else "<g>"
    title = f"<title>{escape(tooltip)}</title>" if tooltip else ""
    return head + title + "".join(children) + "</g>"


def document(width: float, height: float, body: list[str], defs: list[str]) -> str:
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{n(width)}" height="{n(height)}" '
        f'viewBox="0 0 {n(width)} {n(height)}" font-family="DejaVu Sans, Verdana, sans-serif">',
        "<defs>" + "".join(defs) + "</defs>",
        rect(0, 0, width, height, fill="white"),
        *body,
        "</svg>",
        "",
    ])
