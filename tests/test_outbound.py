"""mdmportal.outbound on its own: origins, the loopback, the https rule, and the capped, time-bounded
read (a fake clock counts the reads: no test waits)."""
import email.message
import itertools

import pytest

from mdmportal import outbound


class Trickle:
    """An answer that gives `piece` bytes per read, `total` in all."""

    def __init__(self, total, piece=1, content_length=None):
        self.left, self.piece, self.reads = total, piece, 0
        self.headers = email.message.Message()
        if content_length is not None:
            self.headers["Content-Length"] = str(content_length)

    def read1(self, size):
        self.reads += 1
        count = min(size, self.piece, self.left)
        self.left -= count
        return b"x" * count


@pytest.mark.parametrize("a, b, same", [
    ("https://graph.microsoft.com/v1.0/x", "https://GRAPH.microsoft.com:443/beta/y", True),
    ("https://graph.microsoft.com/v1.0/x", "http://graph.microsoft.com/v1.0/x", False),
    ("https://graph.microsoft.com/v1.0/x", "https://graph.microsoft.com:8443/v1.0/x", False),
    ("http://127.0.0.1:8000/a", "http://127.0.0.1:8001/a", False),
    ("https://graph.microsoft.com/", "https://graph.microsoft.com.evil.example/", False),
])
def test_same_origin_is_scheme_host_and_port(a, b, same):
    assert outbound.same_origin(a, b) is same


@pytest.mark.parametrize("url, plain, loopback_allowed", [
    ("https://keys.example.com/k", True, True),
    ("http://keys.example.com/k", False, False),
    ("http://127.0.0.1:8080/k", False, True),
    ("http://127.8.9.10/k", False, True),
    ("http://[::1]:8080/k", False, True),
    ("http://localhost/k", False, True),
    ("http://localhost.example.com/k", False, False),
    ("http://10.0.0.1/k", False, False),
    ("ftp://127.0.0.1/k", False, False),
    ("https:///k", False, False),
    ("", False, False),
])
def test_https_rule(url, plain, loopback_allowed):
    assert outbound.is_https(url) is plain
    assert outbound.is_https(url, allow_loopback_http=True) is loopback_allowed


def test_an_answer_of_exactly_the_cap_is_read():
    answer = Trickle(total=1000, piece=300)
    assert len(outbound.read_capped(answer, 1000, url="https://x/", seconds=30)) == 1000


def test_one_byte_over_the_cap_is_refused_after_reading_cap_plus_one():
    answer = Trickle(total=10**9, piece=10**6)
    with pytest.raises(outbound.TooLarge, match="larger than 1 MB"):
        outbound.read_capped(answer, 1024 * 1024, url="https://x/", seconds=30)
    assert answer.left == 10**9 - (1024 * 1024 + 1)


def test_a_declared_length_over_the_cap_is_refused_without_reading():
    answer = Trickle(total=10, content_length=2048)
    with pytest.raises(outbound.TooLarge, match="larger than 1 KB"):
        outbound.read_capped(answer, 1024, url="https://x/", seconds=30)
    assert answer.reads == 0


def test_a_trickle_past_the_deadline_stops():
    ticks = itertools.count()  # one second per look at the clock
    answer = Trickle(total=10**6, piece=1)
    with pytest.raises(outbound.TooSlow, match="longer than 30 s"):
        outbound.read_capped(answer, 10**6, url="https://x/", seconds=30, clock=lambda: next(ticks))
    assert answer.reads <= 31
