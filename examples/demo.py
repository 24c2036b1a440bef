"""A small program for `make demo`: recursion, C calls, exceptions, a
generator and worker threads, so the trace shows each kind of slice."""
import json
import threading


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def roundtrip(i):
    data = {"id": i, "values": list(range(20)), "name": f"item-{i}"}
    return json.loads(json.dumps(data))["id"]


def may_fail(i):
    if i % 3 == 0:
        raise ValueError(i)
    return i


def numbers(n):
    for i in range(n):
        yield i * i


def worker(k):
    total = 0
    for i in range(200):
        total += roundtrip(i)
    return total + fib(15 + k)


def main():
    print("fib(20) =", fib(20))
    caught = 0
    for i in range(30):
        try:
            may_fail(i)
        except ValueError:
            caught += 1
    print("caught", caught, "errors; squares sum", sum(numbers(100)))
    threads = [threading.Thread(target=worker, args=(k,), name=f"worker-{k}")
               for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("done")


if __name__ == "__main__":
    main()
