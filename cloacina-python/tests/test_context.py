"""cloaca.Context: upstream's dictionary-like API and the JSON round trip."""

import pytest

import cloaca


def test_get_set_insert_update_remove_delete():
    ctx = cloaca.Context({"name": "Alice", "age": 30})
    assert ctx.get("name") == "Alice" and ctx.get("city") is None and ctx.get("city", "Paris") == "Paris"
    ctx.set("age", 31)
    ctx.insert("city", "Lyon")
    with pytest.raises(ValueError):
        ctx.insert("city", "Nice")
    ctx.update("city", "Nice")
    with pytest.raises(KeyError):
        ctx.update("country", "FR")
    assert ctx.remove("city") == "Nice" and ctx.remove("city") is None
    ctx.delete("age")
    with pytest.raises(KeyError):
        ctx.delete("age")
    assert ctx.to_dict() == {"name": "Alice"}


def test_dictionary_protocol():
    ctx = cloaca.Context()
    ctx["a"] = [1, 2.5, "x", None, True, {"nested": (1, 2)}]
    assert ctx["a"] == [1, 2.5, "x", None, True, {"nested": [1, 2]}]
    assert "a" in ctx and "b" not in ctx and len(ctx) == 1 and list(ctx) == ["a"]
    del ctx["a"]
    with pytest.raises(KeyError):
        ctx["a"]


def test_json_and_dict_round_trips():
    data = {"int": 2**62, "float": 0.1, "text": "é", "list": [1, [2]], "map": {"k": None}, "flag": False}
    ctx = cloaca.Context.from_dict(data)
    assert cloaca.Context.from_json(ctx.to_json()).to_dict() == data
    assert cloaca.Context.from_json(ctx.to_json()) == ctx
    ctx.update_from_dict({"extra": 1})
    assert ctx.get("extra") == 1
    with pytest.raises(ValueError):
        cloaca.Context.from_json("[1, 2]")


def test_values_that_are_not_json_are_refused():
    with pytest.raises(TypeError, match="set"):
        cloaca.Context().set("s", {1, 2})
    with pytest.raises(TypeError, match="keys must be strings"):
        cloaca.Context({"m": {1: "x"}})
    with pytest.raises(ValueError, match="64 bits"):
        cloaca.Context().set("big", 2**70)
    with pytest.raises(ValueError):
        cloaca.Context().set("nan", float("nan"))
