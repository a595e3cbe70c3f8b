"""The plug-in registry: names found in source without importing, modules loaded on use."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from finecliper.errors import FineCLIPERError

INIT = """
from finecliper.registry import Registry

WIDGETS = Registry("widget", __name__, "register_widget")
register_widget = WIDGETS.register
"""


def _package(root: Path, name: str, modules: dict[str, str]) -> object:
    """A package ``name`` under ``root`` with a widget registry and these modules; imported."""
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text(INIT)
    for module, source in modules.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
    return importlib.import_module(name)


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_names_and_keywords_come_from_source_without_import(on_path):
    source = """
        from pkg_lazy import register_widget

        @register_widget("beta", size=2, tags=("x", "y"))
        def make_beta():
            return "beta"
    """
    package = _package(on_path, "pkg_lazy", {"beta": source, "helpers": "VALUE = 1\n"})
    assert package.WIDGETS.names() == ("beta",)
    assert package.WIDGETS.info("beta") == {"size": 2, "tags": ("x", "y")}
    assert "pkg_lazy.beta" not in sys.modules
    assert package.WIDGETS.get("beta").target() == "beta"
    assert "pkg_lazy.beta" in sys.modules
    assert package.WIDGETS.get("gamma") is None


def test_a_name_declared_in_two_modules_is_refused(on_path):
    decorated = """
        from pkg_twice import register_widget

        @register_widget("same")
        class Widget:
            pass
    """
    package = _package(on_path, "pkg_twice", {"one": decorated, "two": decorated})
    with pytest.raises(FineCLIPERError, match=r"widget 'same' is registered twice \(pkg_twice"):
        package.WIDGETS.names()


def test_run_time_registration_is_listed_and_cannot_take_a_declared_name(on_path):
    source = """
        from pkg_runtime import register_widget

        @register_widget("declared")
        def declared():
            return 1
    """
    package = _package(on_path, "pkg_runtime", {"declared": source})

    @package.register_widget("extra", size=3)
    def extra() -> int:
        return 3

    assert package.WIDGETS.names() == ("declared", "extra")
    assert package.WIDGETS.get("extra").info == {"size": 3}
    with pytest.raises(FineCLIPERError, match="'declared' is registered twice"):
        package.register_widget("declared")(extra)
    with pytest.raises(FineCLIPERError, match="'extra' is registered twice"):
        package.register_widget("extra")(declared_elsewhere)
    package.WIDGETS.unregister("extra")
    assert package.WIDGETS.names() == ("declared",)


def declared_elsewhere() -> None:
    """A second function for the duplicate test (a different definition from ``extra``)."""


def test_registration_with_a_computed_name_is_an_error(on_path):
    source = """
        from pkg_computed import register_widget

        NAME = "computed"

        @register_widget(NAME)
        def computed():
            pass
    """
    package = _package(on_path, "pkg_computed", {"computed": source})
    with pytest.raises(FineCLIPERError, match=r"computed\.py:6: a registration takes one name"):
        package.WIDGETS.names()


def test_a_module_that_declares_but_does_not_register_is_named(on_path):
    # The decorator is inside a function that never runs: found in source, never registered.
    source = """
        from pkg_broken import register_widget

        def never_called():
            @register_widget("ghost")
            def ghost():
                pass
    """
    package = _package(on_path, "pkg_broken", {"ghost": source})
    with pytest.raises(FineCLIPERError, match=r"pkg_broken\.ghost declares widget 'ghost' but"):
        package.WIDGETS.get("ghost")
