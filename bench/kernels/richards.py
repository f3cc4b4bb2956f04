"""A Richards-like operating-system scheduler simulation: task objects,
linked packet queues, method dispatch and attribute access."""
import json
import sys
import time

NAME = "richards"
DEFAULT_N = 8

IDLE, WORKER, HANDLER_A, HANDLER_B, DEVICE_A, DEVICE_B = range(6)
KIND_DEVICE, KIND_WORK = 0, 1
BUFSIZE = 4


class Packet:
    __slots__ = ("link", "ident", "kind", "datum", "data")

    def __init__(self, link, ident, kind):
        self.link = link
        self.ident = ident
        self.kind = kind
        self.datum = 0
        self.data = [0] * BUFSIZE

    def append_to(self, queue):
        self.link = None
        if queue is None:
            return self
        p = queue
        while p.link is not None:
            p = p.link
        p.link = self
        return queue


class Task:
    def __init__(self, sched, ident, priority, queue, state):
        self.sched = sched
        self.ident = ident
        self.priority = priority
        self.queue = queue
        # state flags
        self.packet_pending = state[0]
        self.waiting = state[1]
        self.held = state[2]
        self.link = sched.tasks_head
        sched.tasks_head = self
        sched.table[ident] = self

    def is_held_or_waiting(self):
        return self.held or (not self.packet_pending and self.waiting)

    def wait_for_packet(self):
        self.waiting = True
        return self

    def add_packet(self, pkt, current):
        if self.queue is None:
            self.queue = pkt
            self.packet_pending = True
            if self.priority > current.priority:
                return self
        else:
            self.queue = pkt.append_to(self.queue)
        return current

    def run_task(self):
        if self.waiting and self.packet_pending:
            pkt = self.queue
            self.queue = pkt.link
            self.packet_pending = self.queue is not None
            self.waiting = False
        else:
            pkt = None
        return self.run(pkt)


class IdleTask(Task):
    def __init__(self, sched, ident, priority, count):
        Task.__init__(self, sched, ident, priority, None, (False, False, False))
        self.control = 1
        self.count = count

    def run(self, pkt):
        s = self.sched
        self.count -= 1
        if self.count == 0:
            return s.hold_self()
        if self.control & 1 == 0:
            self.control //= 2
            return s.release(DEVICE_A)
        self.control = (self.control // 2) ^ 0xD008
        return s.release(DEVICE_B)


class WorkerTask(Task):
    def __init__(self, sched, ident, priority, queue):
        Task.__init__(self, sched, ident, priority, queue, (True, True, False))
        self.dest = HANDLER_A
        self.count = 0

    def run(self, pkt):
        s = self.sched
        if pkt is None:
            return s.wait()
        self.dest = HANDLER_B if self.dest == HANDLER_A else HANDLER_A
        pkt.ident = self.dest
        pkt.datum = 0
        for i in range(BUFSIZE):
            self.count += 1
            if self.count > 26:
                self.count = 1
            pkt.data[i] = 64 + self.count
        return s.queue_packet(pkt)


class HandlerTask(Task):
    def __init__(self, sched, ident, priority, queue):
        Task.__init__(self, sched, ident, priority, queue, (True, True, False))
        self.work_in = None
        self.device_in = None

    def run(self, pkt):
        s = self.sched
        if pkt is not None:
            if pkt.kind == KIND_WORK:
                self.work_in = pkt.append_to(self.work_in)
            else:
                self.device_in = pkt.append_to(self.device_in)
        work = self.work_in
        if work is not None:
            count = work.datum
            if count < BUFSIZE:
                dev = self.device_in
                if dev is not None:
                    self.device_in = dev.link
                    dev.datum = work.data[count]
                    work.datum = count + 1
                    return s.queue_packet(dev)
            else:
                self.work_in = work.link
                return s.queue_packet(work)
        return s.wait()


class DeviceTask(Task):
    def __init__(self, sched, ident, priority):
        Task.__init__(self, sched, ident, priority, None, (False, True, False))
        self.pending = None

    def run(self, pkt):
        s = self.sched
        if pkt is None:
            pkt = self.pending
            if pkt is None:
                return s.wait()
            self.pending = None
            return s.queue_packet(pkt)
        self.pending = pkt
        s.hold_count += 1
        return s.hold_self()


class Scheduler:
    def __init__(self):
        self.tasks_head = None
        self.table = [None] * 6
        self.current = None
        self.hold_count = 0
        self.queue_count = 0

    def hold_self(self):
        self.hold_count += 1
        self.current.held = True
        return self.current.link

    def wait(self):
        return self.current.wait_for_packet()

    def release(self, ident):
        t = self.table[ident]
        t.held = False
        if t.priority > self.current.priority:
            return t
        return self.current

    def queue_packet(self, pkt):
        t = self.table[pkt.ident]
        self.queue_count += 1
        pkt.link = None
        pkt.ident = self.current.ident
        return t.add_packet(pkt, self.current)

    def schedule(self):
        self.current = self.tasks_head
        while self.current is not None:
            if self.current.is_held_or_waiting():
                self.current = self.current.link
            else:
                self.current = self.current.run_task()


def one_run():
    s = Scheduler()
    IdleTask(s, IDLE, 0, 10000)
    q = Packet(None, WORKER, KIND_WORK)
    q = Packet(q, WORKER, KIND_WORK)
    WorkerTask(s, WORKER, 1000, q)
    q = Packet(None, DEVICE_A, KIND_DEVICE)
    q = Packet(q, DEVICE_A, KIND_DEVICE)
    q = Packet(q, DEVICE_A, KIND_DEVICE)
    HandlerTask(s, HANDLER_A, 2000, q)
    q = Packet(None, DEVICE_B, KIND_DEVICE)
    q = Packet(q, DEVICE_B, KIND_DEVICE)
    q = Packet(q, DEVICE_B, KIND_DEVICE)
    HandlerTask(s, HANDLER_B, 3000, q)
    DeviceTask(s, DEVICE_A, 4000)
    DeviceTask(s, DEVICE_B, 5000)
    s.schedule()
    return s.queue_count, s.hold_count


def work(n):
    r = None
    for _ in range(n):
        r = one_run()
    return list(r)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_N
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    best = None
    check = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        check = work(n)
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    print(json.dumps({"kernel": NAME, "seconds": best, "n": n,
                      "repeats": repeats, "check": check}))


if __name__ == "__main__":
    main()
