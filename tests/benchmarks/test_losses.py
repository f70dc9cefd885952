import torch

from benchmarks import losses as B


def test_the_psl_kernel_comparison_compares_two_forms_of_one_loss():
    (title, inputs, forms), grads = B.KERNELS["psl"], []
    scores, relevance = inputs()
    assert relevance.shape[0] == 64 and int((relevance[:, :1000] > 0).sum()) == 0
    values = []
    for fn in forms.values():
        scores.grad = None
        loss = fn(scores, relevance)
        loss.backward()
        values.append(float(loss))
        grads.append(scores.grad.clone())
    assert values[0] > 0 and abs(values[0] - values[1]) < 1e-5 * values[0]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)
    assert "PSL" in title
