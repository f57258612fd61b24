"""Child process for test_crash_safety: appends forever from several threads and prints each
acknowledged event (``event_id``) the moment its ``append`` returned."""

from __future__ import annotations

import sys
import threading

import cronica


def main() -> None:
    url, threads = sys.argv[1], int(sys.argv[2])
    store = cronica.connect(url)
    out = threading.Lock()

    def write(index: int) -> None:
        n = 0
        while True:
            size = n % 3 + 1
            events = [cronica.NewEvent("Tick", {"w": index, "n": n, "k": k}) for k in range(size)]
            store.append(f"crash-{index}", events, expected_version=cronica.ANY)
            with out:
                sys.stdout.write("".join(f"{event.event_id}\n" for event in events))
                sys.stdout.flush()
            n += 1

    workers = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(threads)]
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
