// Command nfqdelay holds every packet that netfilter queues to it for a
// fixed delay, then lets it go: a stand-in for netem's delay, for kernels
// without sch_netem, in tests that run in network namespaces of their own.
// Packets are released in the order they came, each exactly -delay after
// nfqdelay received it; none is dropped and none bypasses the queue.
//
// Usage:
//
//	nfqdelay -queue N -delay D [-maxlen L] [-rcvbuf BYTES]
//
// with, in the same network namespace, a rule that sends packets to queue
// N, such as
//
//	iptables -A INPUT -i veth0 -j NFQUEUE --queue-num N
//
// (without --queue-bypass: while no nfqdelay is bound, such packets are
// dropped). Only the packet's id leaves the kernel: the packet itself waits
// there, in the queue, for the verdict. Prefer holding packets as they come
// in to holding them as they go out (OUTPUT -o): a packet held in OUTPUT
// still counts against its TCP socket's small-queue limit (TSQ), which then
// lets only a couple of packets at a time into the queue, and a transfer
// crawls. Once bound, it says "nfqdelay: queue N, delay D" on stderr; on
// SIGTERM or SIGINT it releases whatever it holds at once, unbinds, prints
// what it did and what the kernel counted, and exits with status 0.
//
// # The protocol
//
// nfnetlink_queue is spoken over a NETLINK_NETFILTER socket. Every message
// is a netlink header (struct nlmsghdr, host byte order) whose type is
// NFNL_SUBSYS_QUEUE (3) << 8 | the message, then struct nfgenmsg {u8
// family; u8 version (NFNETLINK_V0); be16 res_id (the queue number)}, then
// attributes (struct nlattr {u16 len; u16 type}, each padded to 4 bytes),
// whose payloads are in network byte order. This program uses:
//
//   - NFQNL_MSG_CONFIG (2), sent with NLM_F_ACK and answered by an
//     NLMSG_ERROR whose error is 0 or -errno. One per setting here, so that
//     a refusal says which:
//     NFQA_CFG_CMD (1), struct nfqnl_msg_config_cmd {u8 command; u8 pad;
//     be16 pf}, command NFQNL_CFG_CMD_BIND (1) to become the queue's
//     listener (EBUSY if another socket is), or NFQNL_CFG_CMD_UNBIND (2).
//     Kernels before 3.8 also wanted NFQNL_CFG_CMD_PF_UNBIND/PF_BIND (4, 3)
//     per address family before a bind; later ones ignore them, so they are
//     not sent.
//     NFQA_CFG_PARAMS (2), struct nfqnl_msg_config_params {be32
//     copy_range; u8 copy_mode} (packed, 5 bytes), mode NFQNL_COPY_META
//     (1): metadata only, no payload; all we need is the packet's id.
//     NFQA_CFG_QUEUE_MAXLEN (3), be32: how many packets the kernel holds
//     for us (default 1024); past it, it drops them (or, with FAIL_OPEN,
//     lets them through undelayed).
//     NFQA_CFG_FLAGS (5) with NFQA_CFG_MASK (4), be32 each: the flags in
//     the mask are set to their value in FLAGS. Here FAIL_OPEN (1) is off
//     (a full queue drops, it never bypasses the delay) and GSO (4) is on
//     (GSO packets are queued whole, not segmented first: fewer packets).
//   - NFQNL_MSG_PACKET (0), from the kernel, one per queued packet: its
//     NFQA_PACKET_HDR (1) is struct nfqnl_msg_packet_hdr {be32 packet_id;
//     be16 hw_protocol; u8 hook} (packed). Ids increase by one per packet
//     queued.
//   - NFQNL_MSG_VERDICT (1), to the kernel, without NLM_F_ACK (errors are
//     reported anyway): NFQA_VERDICT_HDR (2), struct nfqnl_msg_verdict_hdr
//     {be32 verdict; be32 id}, verdict NF_ACCEPT (1) for the packet id.
//     NFQNL_MSG_VERDICT_BATCH (3) is the same with the verdict applying to
//     every packet of the queue whose id is not after id: one message
//     when several packets are due together.
//
// The socket's receive buffer must absorb a burst of queued packets while
// the program is busy: if it overflows, the kernel drops the packets it
// could not deliver (counted as queue_user_dropped) and recv fails with
// ENOBUFS. It is made large with SO_RCVBUFFORCE, which needs
// CAP_NET_ADMIN. The kernel's counters are in
// /proc/net/netfilter/nfnetlink_queue of the network namespace: queue,
// portid, packets waiting, copy mode, copy range, dropped because the queue
// was full, dropped because delivery to the socket failed, last id, 1.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Message types, attributes and values of nfnetlink and nfnetlink_queue
// (linux/netfilter/nfnetlink.h, nfnetlink_queue.h, netfilter.h).
const (
	nfnlSubsysQueue = 3
	nfnetlinkV0     = 0

	nfqnlMsgPacket       = 0
	nfqnlMsgVerdict      = 1
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2

	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5

	nfqnlCfgCmdBind   = 1
	nfqnlCfgCmdUnbind = 2

	nfqnlCopyMeta = 1

	nfqaCfgFFailOpen = 1 << 0
	nfqaCfgFGSO      = 1 << 2

	nfAccept = 1

	nlaHdrLen   = 4      // struct nlattr
	nlaTypeMask = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

func main() {
	queue := flag.Uint("queue", 0, "the NFQUEUE number to bind to")
	delay := flag.Duration("delay", 0, "how long to hold each packet")
	maxlen := flag.Uint("maxlen", 1<<20, "how many packets the kernel may hold for us")
	rcvbuf := flag.Int("rcvbuf", 64<<20, "the netlink socket's receive buffer, in bytes")
	flag.Parse()
	if flag.NArg() != 0 || *queue > 0xffff || *delay < 0 || *maxlen == 0 || *maxlen > 1<<32-1 || *rcvbuf <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(uint16(*queue), *delay, uint32(*maxlen), *rcvbuf); err != nil {
		fmt.Fprintln(os.Stderr, "nfqdelay:", err)
		os.Exit(1)
	}
}

func run(queue uint16, delay time.Duration, maxlen uint32, rcvbuf int) error {
	// Asked for before binding, so that none is missed once bound.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	c, err := dial(queue, rcvbuf)
	if err != nil {
		return err
	}
	h := newHolder(c, delay)
	go h.release()

	if err := c.request(h, setting{cmd: nfqnlCfgCmdBind}); err != nil {
		return fmt.Errorf("binding queue %d: %w", queue, err)
	}
	params := append(be32(0), nfqnlCopyMeta) // copy_range 0: no payload
	if err := c.request(h, setting{params: params}); err != nil {
		return fmt.Errorf("setting copy mode META: %w", err)
	}
	if err := c.request(h, setting{maxlen: maxlen}); err != nil {
		return fmt.Errorf("setting the queue's maximum length to %d: %w", maxlen, err)
	}
	flags := [2]uint32{nfqaCfgFGSO, nfqaCfgFFailOpen | nfqaCfgFGSO} // value, mask
	if err := c.request(h, setting{flags: &flags}); err != nil {
		return fmt.Errorf("setting flags GSO on, FAIL_OPEN off: %w", err)
	}
	fmt.Fprintf(os.Stderr, "nfqdelay: queue %d, delay %v\n", queue, delay)

	failed := make(chan error, 1)
	go func() { failed <- c.receive(h) }()
	select {
	case err := <-failed:
		return err
	case <-sigs:
	}
	early := h.stop()
	kernel := kernelCounters(queue) // while the queue still exists
	// Not acknowledged: the reader would be the one to see the answer,
	// and the socket's closing at exit unbinds anyway.
	c.config(0, setting{cmd: nfqnlCfgCmdUnbind})
	fmt.Fprintf(os.Stderr, "nfqdelay: queue %d: %d packets delayed, at most %d held at once, %d released early on exit, %d overflows of the receive buffer, %d verdicts refused; kernel: %s\n",
		queue, h.total.Load(), h.most.Load(), early, c.overflows.Load(), c.refused.Load(), kernel)
	return nil
}

// conn is a bound nfnetlink socket for one queue.
type conn struct {
	fd        int
	queue     uint16
	seq       atomic.Uint32
	overflows atomic.Int64 // recv failed with ENOBUFS: the kernel dropped packets
	refused   atomic.Int64 // error answers to verdicts
}

func dial(queue uint16, rcvbuf int) (*conn, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, rcvbuf); err != nil {
		// Without CAP_NET_ADMIN, as much as net.core.rmem_max allows.
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf); err != nil {
			return nil, fmt.Errorf("setting the receive buffer: %w", err)
		}
		fmt.Fprintf(os.Stderr, "nfqdelay: SO_RCVBUFFORCE refused, receive buffer capped by net.core.rmem_max\n")
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("binding the netlink socket: %w", err)
	}
	return &conn{fd: fd, queue: queue}, nil
}

// message returns a netlink message of nfnetlink_queue type msg for the
// queue, with attrs (each already laid out) after the nfgenmsg header.
func (c *conn) message(msg uint16, flags uint16, seq uint32, attrs ...[]byte) []byte {
	b := make([]byte, syscall.NLMSG_HDRLEN, 64)
	b = append(b, syscall.AF_UNSPEC, nfnetlinkV0)
	b = binary.BigEndian.AppendUint16(b, c.queue)
	for _, a := range attrs {
		b = append(b, a...)
	}
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], nfnlSubsysQueue<<8|msg)
	ne.PutUint16(b[6:], syscall.NLM_F_REQUEST|flags)
	ne.PutUint32(b[8:], seq)
	ne.PutUint32(b[12:], 0) // to the kernel
	return b
}

// attr lays out one attribute, padded to 4 bytes.
func attr(typ uint16, payload []byte) []byte {
	n := nlaHdrLen + len(payload)
	b := make([]byte, (n+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(n))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[nlaHdrLen:], payload)
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func (c *conn) send(b []byte) error {
	for {
		err := syscall.Sendto(c.fd, b, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK})
		if err != syscall.EINTR {
			return err
		}
	}
}

// setting is what one NFQNL_MSG_CONFIG says: whichever fields are set.
type setting struct {
	cmd    uint8      // NFQNL_CFG_CMD_*
	params []byte     // struct nfqnl_msg_config_params
	maxlen uint32     // NFQA_CFG_QUEUE_MAXLEN
	flags  *[2]uint32 // NFQA_CFG_FLAGS and NFQA_CFG_MASK
}

// config sends s and returns its sequence number.
func (c *conn) config(flags uint16, s setting) (uint32, error) {
	var attrs [][]byte
	if s.cmd != 0 {
		attrs = append(attrs, attr(nfqaCfgCmd, []byte{s.cmd, 0, 0, 0})) // pf: unused
	}
	if s.params != nil {
		attrs = append(attrs, attr(nfqaCfgParams, s.params))
	}
	if s.maxlen != 0 {
		attrs = append(attrs, attr(nfqaCfgQueueMaxlen, be32(s.maxlen)))
	}
	if s.flags != nil {
		attrs = append(attrs, attr(nfqaCfgFlags, be32(s.flags[0])), attr(nfqaCfgMask, be32(s.flags[1])))
	}
	seq := c.seq.Add(1)
	return seq, c.send(c.message(nfqnlMsgConfig, flags, seq, attrs...))
}

// request sends s with NLM_F_ACK and waits for the answer. Packets that
// come meanwhile are handed to h.
func (c *conn) request(h *holder, s setting) error {
	seq, err := c.config(syscall.NLM_F_ACK, s)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for {
		msgs, now, err := c.recv(buf)
		if err != nil {
			return err
		}
		for i, m := range msgs {
			if m.Header.Type == syscall.NLMSG_ERROR && m.Header.Seq == seq {
				c.handle(h, append(msgs[:i:i], msgs[i+1:]...), now)
				if errno := ackErrno(m); errno != 0 {
					return errno
				}
				return nil
			}
		}
		c.handle(h, msgs, now)
	}
}

// recv reads one datagram and parses its messages.
func (c *conn) recv(buf []byte) ([]syscall.NetlinkMessage, time.Time, error) {
	for {
		n, _, err := syscall.Recvfrom(c.fd, buf, 0)
		now := time.Now()
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.ENOBUFS:
			c.overflows.Add(1)
			fmt.Fprintln(os.Stderr, "nfqdelay: the receive buffer overflowed: the kernel dropped packets")
			continue
		case err != nil:
			return nil, now, fmt.Errorf("netlink recv: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, now, fmt.Errorf("parsing a netlink message: %w", err)
		}
		return msgs, now, nil
	}
}

// receive reads queued packets for ever and hands them to h.
func (c *conn) receive(h *holder) error {
	buf := make([]byte, 1<<16)
	for {
		msgs, now, err := c.recv(buf)
		if err != nil {
			return err
		}
		c.handle(h, msgs, now)
	}
}

// handle gives h the packets among msgs, received at now, and reports
// errors that answer verdicts.
func (c *conn) handle(h *holder, msgs []syscall.NetlinkMessage, now time.Time) {
	for _, m := range msgs {
		switch m.Header.Type {
		case nfnlSubsysQueue<<8 | nfqnlMsgPacket:
			id, ok := packetID(m.Data)
			if !ok {
				fmt.Fprintln(os.Stderr, "nfqdelay: a queued packet without NFQA_PACKET_HDR")
				continue
			}
			h.hold(id, now)
		case syscall.NLMSG_ERROR:
			if errno := ackErrno(m); errno != 0 {
				c.refused.Add(1)
				fmt.Fprintf(os.Stderr, "nfqdelay: the kernel refused message %d: %v\n", m.Header.Seq, errno)
			}
		}
	}
}

// ackErrno returns the error an NLMSG_ERROR carries, 0 for an
// acknowledgement.
func ackErrno(m syscall.NetlinkMessage) syscall.Errno {
	if len(m.Data) < 4 {
		return syscall.EBADMSG
	}
	return syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data)))
}

// packetID finds NFQA_PACKET_HDR in a NFQNL_MSG_PACKET's payload.
func packetID(data []byte) (uint32, bool) {
	const nfgenmsgLen = 4
	if len(data) < nfgenmsgLen {
		return 0, false
	}
	b := data[nfgenmsgLen:]
	for len(b) >= nlaHdrLen {
		n := int(binary.NativeEndian.Uint16(b[0:]))
		typ := binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
		if n < nlaHdrLen || n > len(b) {
			return 0, false
		}
		if typ == nfqaPacketHdr && n >= nlaHdrLen+4 {
			return binary.BigEndian.Uint32(b[nlaHdrLen:]), true
		}
		b = b[min((n+3)&^3, len(b)):]
	}
	return 0, false
}

// verdict accepts packet id, and with batch every packet before it too.
func (c *conn) verdict(id uint32, batch bool) error {
	msg := uint16(nfqnlMsgVerdict)
	if batch {
		msg = nfqnlMsgVerdictBatch
	}
	hdr := binary.BigEndian.AppendUint32(be32(nfAccept), id)
	return c.send(c.message(msg, 0, c.seq.Add(1), attr(nfqaVerdictHdr, hdr)))
}

// held is a packet waiting for its time.
type held struct {
	id  uint32
	due time.Time
}

// holder is the timer queue: packets in the order they came, which with a
// fixed delay is also the order they are due in.
type holder struct {
	c     *conn
	delay time.Duration
	wake  chan struct{} // a packet came into an empty queue
	done  chan struct{} // closed by stop

	mu      sync.Mutex
	fifo    []held
	stopped bool

	total atomic.Int64 // packets received
	most  atomic.Int64 // the most held at once
}

func newHolder(c *conn, delay time.Duration) *holder {
	return &holder{c: c, delay: delay, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (h *holder) hold(id uint32, now time.Time) {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		// Too late to hold it; not too late to let it go.
		h.c.verdict(id, false)
		return
	}
	h.fifo = append(h.fifo, held{id: id, due: now.Add(h.delay)})
	n := int64(len(h.fifo))
	h.mu.Unlock()
	h.total.Add(1)
	if n > h.most.Load() {
		h.most.Store(n) // only this goroutine stores
	}
	if n == 1 {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// release accepts packets as they fall due, every packet due by now in
// one verdict.
func (h *holder) release() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		h.mu.Lock()
		if h.stopped {
			h.mu.Unlock()
			return
		}
		if len(h.fifo) == 0 {
			h.mu.Unlock()
			select {
			case <-h.wake:
			case <-h.done:
			}
			continue
		}
		now := time.Now()
		if wait := h.fifo[0].due.Sub(now); wait > 0 {
			h.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-h.done:
				timer.Stop()
			}
			continue
		}
		n := 1
		for n < len(h.fifo) && !h.fifo[n].due.After(now) {
			n++
		}
		last := h.fifo[n-1].id
		h.fifo = h.fifo[n:]
		if len(h.fifo) == 0 {
			h.fifo = h.fifo[:0:0] // let the backing array go
		}
		// Sent under the lock, so that stop's batch cannot overtake it.
		if err := h.c.verdict(last, n > 1); err != nil {
			fmt.Fprintf(os.Stderr, "nfqdelay: sending a verdict: %v\n", err)
		}
		h.mu.Unlock()
	}
}

// stop accepts every packet held, at once, and returns how many.
func (h *holder) stop() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	close(h.done)
	n := len(h.fifo)
	if n > 0 {
		if err := h.c.verdict(h.fifo[n-1].id, true); err != nil {
			fmt.Fprintf(os.Stderr, "nfqdelay: sending the last verdict: %v\n", err)
		}
		h.fifo = nil
	}
	return n
}

// kernelCounters reads the queue's line of /proc/net/netfilter/nfnetlink_queue.
func kernelCounters(queue uint16) string {
	b, err := os.ReadFile("/proc/net/netfilter/nfnetlink_queue")
	if err != nil {
		return err.Error()
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 8 && f[0] == fmt.Sprint(queue) {
			return fmt.Sprintf("%s waiting, %s dropped (queue full), %s dropped (not delivered), last id %s", f[2], f[5], f[6], f[7])
		}
	}
	return "queue not listed in /proc/net/netfilter/nfnetlink_queue"
}
