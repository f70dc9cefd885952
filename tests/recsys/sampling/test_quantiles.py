import numpy as np
import scipy.sparse as sp
import torch

from itemrec.recsys.sampling import UserQuantiles
from itemrec.recsys.sampling import quantiles as quantiles_module
from itemrec.recsys.sampling.base import reject_positives
from tests.recsys.sampling.conftest import generator, random_train

# One-dimensional vectors: every user's vector is 1, so a user's score of item i is ITEM_SCORES[i].
ITEM_SCORES = torch.tensor([[0.9], [0.1], [0.6], [0.3], [0.3], [0.3]])
USER_VECTORS = torch.ones(3, 1)


def hand_train() -> sp.csr_matrix:
    """User 0 likes items 0, 1, 2 (0.9, 0.1, 0.6): its non-positives all score 0.3. User 1 likes
    items 3, 4, 5 (0.3 each); user 2 likes item 0."""
    dense = np.zeros((3, 6), dtype=np.float32)
    dense[0, [0, 1, 2]] = 1
    dense[1, [3, 4, 5]] = 1
    dense[2, [0]] = 1
    return sp.csr_matrix(dense)


def test_the_kth_largest_of_positives_and_sampled_negatives_by_hand():
    # user 0 with two negatives: candidates 0.9, 0.6, 0.1 and 0.3, 0.3 (whichever items are drawn)
    expected = {1: 0.9, 2: 0.6, 3: 0.3, 4: 0.3, 5: 0.1, 6: 0.1}  # K = 6 > 5 candidates: the smallest
    for k, value in expected.items():
        quantiles = UserQuantiles(hand_train(), k=k, negatives=2)
        got = quantiles.estimate(USER_VECTORS, ITEM_SCORES, torch.tensor([0]), generator(k))
        assert got.dtype == torch.float32 and got.tolist() == [np.float32(value)], k


def test_estimates_equal_a_brute_force_over_the_drawn_negatives_in_chunks(monkeypatch):
    """Per user: the K-th largest of its positives' and its drawn negatives' scores (draws with
    replacement, as in the benchmark: a duplicate counts twice), whatever the chunking."""
    train = random_train(40, 30, 0.15, seed=4)
    torch.manual_seed(0)
    user_vectors, item_vectors = torch.randn(40, 5), torch.randn(30, 5)
    drawn = []

    def recording(*args):
        out = reject_positives(*args)
        drawn.append((args[1], out))
        return out

    monkeypatch.setattr(quantiles_module, "reject_positives", recording)
    k, negatives = 7, 9
    quantiles = UserQuantiles(train, k=k, negatives=negatives, max_elements=5 * 5 * (negatives + 12))
    got = quantiles.estimate(user_vectors, item_vectors, torch.arange(40), generator(1))
    assert len(drawn) > 3  # several chunks
    dense = train.toarray() > 0
    expected = torch.zeros(40)
    for users, items in drawn:
        for user, row in zip(users.tolist(), items):
            assert not dense[user, row].any()  # negatives are never the user's positives
            candidates = np.flatnonzero(dense[user]).tolist() + row.tolist()
            scores = sorted((user_vectors[user] @ item_vectors[candidates].T).tolist(), reverse=True)
            expected[user] = scores[min(k, len(scores)) - 1]
    torch.testing.assert_close(got, expected)
    exact = (user_vectors @ item_vectors.T).topk(k, dim=1).values[:, -1]
    assert not torch.equal(got, exact)  # a sample, not the catalogue's threshold


def test_refresh_schedule_and_state():
    quantiles = UserQuantiles(hand_train(), k=1, negatives=2, refresh_every=3)
    assert [e for e in range(1, 11) if quantiles.due(e)] == [1, 4, 7, 10]
    calls = []

    def vectors():
        calls.append(1)
        return USER_VECTORS, ITEM_SCORES

    refreshed = [quantiles.maybe_refresh(e, vectors, generator()) for e in range(1, 6)]
    assert refreshed == [True, False, False, True, False] and len(calls) == 2
    assert quantiles.beta.tolist() == [np.float32(0.9), np.float32(0.9), np.float32(0.9)]
    other = UserQuantiles(hand_train(), k=1, negatives=2)
    assert other.beta.tolist() == [0.0, 0.0, 0.0]  # before the first refresh
    other.load_state_dict(quantiles.state_dict())
    assert torch.equal(other.beta, quantiles.beta)


def test_only_training_users_are_estimated():
    dense = hand_train().toarray()
    dense[1] = 0
    quantiles = UserQuantiles(sp.csr_matrix(dense), k=1, negatives=2)
    assert quantiles.users.tolist() == [0, 2]
    quantiles.maybe_refresh(1, lambda: (USER_VECTORS, ITEM_SCORES), generator())
    assert quantiles.beta.tolist() == [np.float32(0.9), 0.0, np.float32(0.9)]


def test_at_most_max_positives_of_a_user_s_positives_drawn_at_random():
    # user 0, K = 1, one positive kept: the drawn positive's score, or 0.3 (a negative) if it is 0.1
    seen = set()
    for seed in range(30):
        quantiles = UserQuantiles(hand_train(), k=1, negatives=2, max_positives=1)
        seen.update(quantiles.estimate(USER_VECTORS, ITEM_SCORES, torch.tensor([0]), generator(seed)).tolist())
    assert seen == {np.float32(0.9), np.float32(0.6), np.float32(0.3)}
    # a cap at least every user's count keeps them all: K = 2 of 0.9, 0.6, 0.1 and two 0.3s
    capped = UserQuantiles(hand_train(), k=2, negatives=2, max_positives=3)
    assert all(capped.estimate(USER_VECTORS, ITEM_SCORES, torch.tensor([0]), generator(seed)).tolist()
               == [np.float32(0.6)] for seed in range(5))


def test_capped_estimates_equal_a_brute_force_over_the_drawn_positives_and_negatives(monkeypatch):
    train = random_train(40, 30, 0.3, seed=5)
    torch.manual_seed(1)
    user_vectors, item_vectors = torch.randn(40, 5), torch.randn(30, 5)
    drawn = {"positives": [], "negatives": []}
    sample, reject = quantiles_module.sample_positives, quantiles_module.reject_positives

    def record_positives(positives, users, count, generator):
        items, mask = sample(positives, users, count, generator)
        drawn["positives"].append((users, items, mask))
        return items, mask

    def record_negatives(*args):
        out = reject(*args)
        drawn["negatives"].append(out)
        return out

    monkeypatch.setattr(quantiles_module, "sample_positives", record_positives)
    monkeypatch.setattr(quantiles_module, "reject_positives", record_negatives)
    k, cap = 4, 3
    quantiles = UserQuantiles(train, k=k, negatives=6, max_positives=cap, max_elements=5 * 10 * 9)
    got = quantiles.estimate(user_vectors, item_vectors, torch.arange(40), generator(2))
    assert len(drawn["positives"]) > 2  # several chunks
    dense = train.toarray() > 0
    expected = torch.zeros(40)
    for (users, items, mask), negatives in zip(drawn["positives"], drawn["negatives"]):
        for user, row, keep, negs in zip(users.tolist(), items, mask, negatives):
            kept = row[keep].tolist()
            assert len(kept) == min(cap, dense[user].sum()) == len(set(kept)) and dense[user, kept].all()
            scores = sorted((user_vectors[user] @ item_vectors[kept + negs.tolist()].T).tolist(), reverse=True)
            expected[user] = scores[k - 1]
    torch.testing.assert_close(got, expected)
    assert (dense.sum(1) > cap).sum() > 10  # most users had positives left out
