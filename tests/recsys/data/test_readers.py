"""Every reader on small files written here: values, types, column mapping and each bad input."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from itemrec.experiment.errors import UserError
from itemrec.recsys.data.columns import Columns
from itemrec.recsys.data.readers import detect_columns, detect_format, read_interactions


def rows(frame: pl.DataFrame) -> list[tuple]:
    return list(frame.iter_rows())


def test_csv_with_default_names(write):
    path = write("a.csv", "user_id,item_id,rating,timestamp\n7,10,4.5,100\n8,11,3,200\n")
    frame = read_interactions(path)
    assert frame.columns == ["user", "item", "rating", "timestamp"]
    assert frame.schema["user"] == pl.Int64 and frame.schema["rating"] == pl.Float64
    assert frame.schema["timestamp"] == pl.Int64
    assert rows(frame) == [(7, 10, 4.5, 100), (8, 11, 3.0, 200)]


def test_tsv_with_custom_names_and_string_ids(write):
    path = write("a.tsv", "who\twhat\tstars\n u1\tbook-9\t5\nu2\t007\t1\n")
    frame = read_interactions(path, columns=Columns(user="who", item="what", rating="stars"))
    assert frame.columns == ["user", "item", "rating"]
    # "007" must not become 7: ids stay strings unless every one is a plain integer.
    assert rows(frame) == [(" u1", "book-9", 5.0), ("u2", "007", 1.0)]


def test_optional_columns_absent_are_skipped(write):
    frame = read_interactions(write("a.csv", "user_id,item_id\n1,2\n1,3\n"))
    assert frame.columns == ["user", "item"]
    assert rows(frame) == [(1, 2), (1, 3)]


def test_parquet(tmp_path: Path):
    path = tmp_path / "a.parquet"
    pl.DataFrame({"u": ["x", "y"], "i": [3, 4], "when": [1.5, 2.5]}).write_parquet(path)
    frame = read_interactions(path, columns=Columns(user="u", item="i", timestamp="when"))
    assert rows(frame) == [("x", 3, 1.5), ("y", 4, 2.5)]


def test_recbole_inter_typed_header(write):
    text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n1m_1\tToy Story (1995)\t5\t978300760\r\n1m_2\tHeat (1995)\t3\t978300761\r\n"
    frame = read_interactions(write("x.inter", text))
    assert rows(frame) == [("1m_1", "Toy Story (1995)", 5.0, 978300760), ("1m_2", "Heat (1995)", 3.0, 978300761)]


def test_recbole_numeric_tokens_become_integers(write):
    frame = read_interactions(write("x.inter", "user_id:token\titem_id:float\n196\t242\n22\t377.0\n"))
    assert frame.schema["user"] == pl.Int64 and frame.schema["item"] == pl.Int64
    assert rows(frame) == [(196, 242), (22, 377)]


def test_movielens_100k_raw(write):
    frame = read_interactions(write("u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"))
    assert rows(frame) == [(196, 242, 3.0, 881250949), (186, 302, 3.0, 891717742)]


def test_movielens_1m_raw(write):
    frame = read_interactions(write("ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n"))
    assert rows(frame) == [(1, 1193, 5.0, 978300760), (1, 661, 3.0, 978302109)]


def test_lightgcn_directory_keeps_the_given_split(write):
    write("g/train.txt", "0 1 2 3\n1 2\n2 5 6 \n")
    directory = write("g/test.txt", "0 4\n1 3\n").parent
    frame = read_interactions(directory)
    assert rows(frame) == [
        (0, 1, "train"), (0, 2, "train"), (0, 3, "train"), (1, 2, "train"), (2, 5, "train"), (2, 6, "train"),
        (0, 4, "test"), (1, 3, "test"),
    ]
    assert detect_format(directory) == "lightgcn"


def test_lightgcn_single_file(write):
    frame = read_interactions(write("test.txt", "5 1\n6 2 3\n"))
    assert rows(frame) == [(5, 1, "test"), (6, 2, "test"), (6, 3, "test")]


IRB_ROWS = [
    (3, 10, "train"), (3, 11, "train"), (3, 12, "train"), (7, 11, "train"), (7, 20, "train"), (9, 10, "train"),
    (3, 20, "test"), (7, 10, "test"), (9, 12, "test"),
]


@pytest.mark.parametrize(
    "layout", ["proc folder", "proc.zip", "zip with proc/ inside", "folder holding proc/", "folder holding proc.zip"]
)
def test_ir_benchmark_layouts_keep_the_given_split(tmp_path: Path, make_irbench, layout: str):
    source = {
        "proc folder": lambda: make_irbench(tmp_path / "proc"),
        "proc.zip": lambda: make_irbench(tmp_path / "proc.zip"),
        "zip with proc/ inside": lambda: make_irbench(tmp_path / "gowalla.zip", inner="proc/"),
        "folder holding proc/": lambda: make_irbench(tmp_path / "health" / "proc").parent,
        "folder holding proc.zip": lambda: make_irbench(tmp_path / "health" / "proc.zip").parent,
    }[layout]()
    assert detect_format(source) == "ir-benchmark"
    frame = read_interactions(source)
    assert rows(frame) == IRB_ROWS
    assert frame.schema["user"] == pl.Int64 and frame.schema["item"] == pl.Int64


def test_ir_benchmark_bad_header_names_file_and_header(tmp_path: Path, make_irbench):
    folder = make_irbench(tmp_path / "proc")
    (folder / "test.tsv").write_text("user\titem\n1\t2\n")
    assert error_of(folder) == (
        f"{folder / 'test.tsv'}: expected the header 'user_procid\\titem_procid', found 'user\\titem'"
    )


def test_ir_benchmark_archive_without_test_file(tmp_path: Path):
    import zipfile

    archive = tmp_path / "proc.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("train.tsv", "user_procid\titem_procid\n1\t2\n")
    assert "no test.tsv inside" in error_of(archive)


def test_ir_benchmark_non_integer_id_names_the_line(tmp_path: Path, make_irbench):
    archive = make_irbench(tmp_path / "proc.zip", train=[(1, 2), (1, "x")])
    message = error_of(archive)
    assert message == f"{archive}:train.tsv: line 3: item id 'x' is not an integer (IR-Benchmark files hold integer ids)"


def test_ir_benchmark_truncated_zip(tmp_path: Path, make_irbench):
    archive = make_irbench(tmp_path / "proc.zip")
    archive.write_bytes(archive.read_bytes()[:60])
    assert "unreadable or truncated zip" in error_of(archive)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("u.data", "movielens-100k"), ("ratings.dat", "movielens-1m"), ("x.inter", "recbole"), ("a.TSV", "tsv"), ("b.pq", "parquet")],
)
def test_format_detection(tmp_path: Path, name: str, fmt: str):
    assert detect_format(tmp_path / name) == fmt


# --- bad input: one line naming the file and the problem ---------------------------------------


def error_of(path: Path, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        read_interactions(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def test_missing_column_lists_the_columns_and_the_flag(write):
    message = error_of(write("a.csv", "name,item_id\n1,2\n"))
    assert "no user id column found (columns are: name, item_id" in message
    assert "--user-col / data.user_col" in message


def test_explicit_id_column_must_exist(write):
    message = error_of(write("a.csv", "user,item_id\n1,2\n"), columns=Columns(user="user_id"))
    assert "no column 'user_id' for the user id" in message and "columns are: user, item_id" in message


@pytest.mark.parametrize(
    "header, mapping",
    [
        ("user,item", {"user": "user", "item": "item"}),
        ("userId,movieId,rating,timestamp", {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}),
        ("USER_ID,Product_Id,Score", {"user": "USER_ID", "item": "Product_Id", "rating": "Score"}),
        ("reviewerID,asin,overall,unixReviewTime", {"user": "reviewerID", "item": "asin", "rating": "overall", "timestamp": "unixReviewTime"}),
        ("customer_id,sku", {"user": "customer_id", "item": "sku"}),
        ("user,user_id,item_id", {"user": "user_id", "item": "item_id"}),  # the preferred name wins
    ],
)
def test_columns_are_detected_case_insensitively(write, capsys, header, mapping):
    width = len(header.split(","))
    path = write("a.csv", header + "\n" + ",".join(["1"] * width) + "\n" + ",".join(["2"] * width) + "\n")
    assert detect_columns(path, header.split(","), Columns()) == mapping
    frame = read_interactions(path, quiet=False)
    assert set(frame.columns) == set(mapping) and frame.height == 2
    printed = capsys.readouterr().err
    assert "columns " + ", ".join(f"{role} <- {name}" for role, name in mapping.items()) in " ".join(printed.split())


def test_named_columns_override_detection(write):
    path = write("a.csv", "user,userId,item\na,1,x\nb,2,y\n")
    frame = read_interactions(path, columns=Columns(user="userId"))
    assert frame["user"].to_list() == [1, 2]


def test_ambiguous_column_lists_the_candidates_and_the_flag(write):
    message = error_of(write("a.csv", "user,item,movieId\n1,2,3\n"))
    assert "several columns could hold the item (item, movieId)" in message and "--item-col / data.item_col" in message
    message = error_of(write("b.csv", "user,item,score,stars\n1,2,3,4\n"))
    assert "several columns could hold the rating (score, stars)" in message and "--rating-col" in message


def test_date_strings_become_epoch_seconds(write):
    frame = read_interactions(write("a.csv", "user,item,date\n1,2,2020-01-01\n1,3,2020-01-02T00:00:10\n".replace("date", "datetime")))
    assert frame["timestamp"].to_list() == [1577836800, 1577923210]


def test_explicitly_named_optional_column_must_exist(write):
    message = error_of(write("a.csv", "user_id,item_id\n1,2\n"), columns=Columns(rating="stars"))
    assert "no column 'stars' for the rating" in message


def test_non_numeric_rating_names_the_line(write):
    message = error_of(write("a.csv", "user_id,item_id,rating\n1,2,4\n1,3,good\n"))
    assert "line 3: rating 'good' is not a number" in message


def test_non_numeric_declared_id_in_recbole(write):
    message = error_of(write("x.inter", "user_id:float\titem_id:token\n1\ta\nbob\tb\n"))
    assert "line 3: user id 'bob' is not an integer" in message and "user_id:float" in message


def test_non_numeric_id_in_lightgcn(write):
    message = error_of(write("train.txt", "0 1 2\n1 x\n"))
    assert "line 2: item id 'x' is not an integer" in message


def test_truncated_csv_line(write):
    message = error_of(write("a.csv", "user_id,item_id,rating\n1,2,4\n1,3"))
    assert "line 3: no rating value" in message and "truncated" in message


def test_truncated_u_data(write):
    message = error_of(write("u.data", "196\t242\t3\t881250949\n186\t302\n"))
    assert "line 2: no rating value" in message


def test_truncated_parquet(tmp_path: Path):
    path = tmp_path / "a.parquet"
    pl.DataFrame({"user_id": [1, 2], "item_id": [3, 4]}).write_parquet(path)
    path.write_bytes(path.read_bytes()[:-20])
    assert "unreadable or truncated file" in error_of(path)


def test_ragged_csv(write):
    assert "unreadable or truncated file" in error_of(write("a.csv", "user_id,item_id\n1,2\n1,2,3,4\n"))


def test_header_only(write):
    assert "no interactions" in error_of(write("a.csv", "user_id,item_id\n"))


def test_recbole_header_without_types(write):
    assert "has no ':type'" in error_of(write("x.inter", "user_id\titem_id\n1\t2\n"))


def test_unknown_format_and_missing_file(tmp_path: Path):
    unknown = tmp_path / "x.bin"
    unknown.write_text("1")
    assert "unknown file format" in error_of(unknown)
    assert "no such file" in error_of(tmp_path / "absent.csv")
