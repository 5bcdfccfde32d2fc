import pytest

from nos_symbolic import parse_rule


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("adam", [r"\frac{\hat{m}}{\sqrt{\hat{v}}}"]),
        ("y + g", [r"\hat{\gamma}"]),
        ("powersign", [r"\operatorname{sign}\left(g\right)", r"\operatorname{sign}\left(\hat{m}\right)", "e^{"]),
        ("clip(g, 1e-3)", [r"\operatorname{clip}"]),
        ("g / m", [r"\frac{g}{\hat{m}}"]),
        ("powersign-cd", [r"\operatorname{cd}"]),
        ("drop(g, 0.3)", [r"\operatorname{drop}"]),
    ],
)
def test_latex_reads_like_the_paper(text, fragments):
    latex = parse_rule(text).latex()
    for fragment in fragments:
        assert fragment in latex
    assert "delta" not in latex and r"\delta" not in latex
