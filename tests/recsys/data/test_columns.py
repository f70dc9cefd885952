"""Column roles: the names recognised for each, how names are compared, and a light import."""

from __future__ import annotations

import subprocess
import sys

from itemrec.recsys.data.columns import (
    FLAGS,
    ITEM,
    KNOWN_NAMES,
    RATING,
    TIMESTAMP,
    USER,
    Columns,
    normalized,
)


def test_names_compare_without_case_and_separators():
    assert {normalized(n) for n in ("User_ID", "user id", "userId", "USER-ID", "user.id")} == {"userid"}
    assert normalized("item_id") != normalized("item_idx")


def test_no_name_is_recognised_for_two_roles():
    seen: dict[str, str] = {}
    for role, names in KNOWN_NAMES.items():
        for name in names:
            key = normalized(name)
            assert seen.setdefault(key, role) == role, f"{name!r}: {seen[key]} and {role}"


def test_every_role_has_its_preferred_name_first_and_a_flag():
    assert list(KNOWN_NAMES) == list(FLAGS) == [USER, ITEM, RATING, TIMESTAMP]
    assert [names[0] for names in KNOWN_NAMES.values()] == ["user_id", "item_id", "rating", "timestamp"]


def test_given_maps_each_role_to_the_users_column():
    assert Columns(user="who", timestamp="when").given() == {"user": "who", "item": None, "rating": None, "timestamp": "when"}
    assert set(Columns().given().values()) == {None}


def test_importing_the_column_names_pulls_in_no_data_library():
    code = (
        "import sys, itemrec.recsys.data.columns, itemrec.recsys.data.split_kinds\n"
        "print(sorted(m for m in ('polars', 'numpy', 'torch', 'scipy', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
