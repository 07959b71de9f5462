"""Count the primes below n. Correct, and slow: make it faster."""


def is_prime(k: int) -> bool:
    if k < 2:
        return False
    d = 2
    while d * d <= k:
        if k % d == 0:
            return False
        d += 1
    return True


def count_primes(n: int) -> int:
    """How many primes are smaller than n."""
    return sum(1 for k in range(n) if is_prime(k))
