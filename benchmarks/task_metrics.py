"""Task scores the benchmarks and the stunt-double scripts share: ROUGE-L between token (or word)
sequences, and the accuracy of a logistic probe on embeddings."""


def rouge_l(candidate, reference):
    """ROUGE-L F1 of two token sequences (longest common subsequence); 1 for two empty ones."""
    if not candidate or not reference:
        return float(candidate == reference)
    previous = [0] * (len(reference) + 1)
    for token in candidate:
        current = [0]
        for j, other in enumerate(reference):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(candidate), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def probe_accuracy(train_x, train_y, test_x, test_y):
    """Multinomial logistic regression (L2 1e-3) fitted by L-BFGS on the training embeddings,
    from zero weights (deterministic); its accuracy on the test embeddings."""
    import torch
    import torch.nn.functional as F

    classes = int(train_y.max()) + 1
    weight = torch.zeros(train_x.size(1), classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + 1e-3 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float(((test_x @ weight + bias).argmax(1) == test_y).float().mean())
