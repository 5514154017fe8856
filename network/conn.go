package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"p2pchat/network/wire"
)

// conn is a friend's connection once both ends know who the other is,
// whichever end dialled: frames go both ways on it. Its reader hands the
// friend's messages to the friend's inbox, which records them, and the ack
// writer acknowledges each once recorded; acks for what we sent wait in
// acks for the outbox that sends on it.
//
// Three goroutines, so that reading never waits on writing: were both
// ends to stop reading while they write, two long backlogs crossing would
// deadlock until a write deadline.
//   - the reader (read) decodes frames;
//   - run records what the reader decoded, in batches;
//   - the ack writer (writeAcks) writes the acks run produced.
//
// The outbox writes messages itself, under wmu.
type conn struct {
	node       *Node
	friend     string
	id         ID // the friend's, checked
	addr       string
	inbound    bool // the friend dialled
	tlsVersion uint16
	nc         net.Conn
	br         *bufio.Reader
	silence    time.Duration // read deadline per frame; zero for none

	// first checks the first frame the friend sends, before anything else
	// counts (the client's welcome); nil when there is nothing to check.
	first    func(wire.Frame) error
	welcomed bool // first passed, or there was none; read it after done

	wmu sync.Mutex // guards bw: the outbox and the ack writer share it
	bw  *bufio.Writer

	// Acks the friend sent for our messages, read and not yet taken, in
	// order. A friend cannot acknowledge more messages than were written
	// on the connection, so there are never more than were written.
	written  atomic.Int64 // messages written
	acked    atomic.Int64 // acks read
	ackMu    sync.Mutex
	acks     []wire.Ack
	ackReady chan struct{} // signalled when acks grows

	// Frames we owe the friend, not yet written: acks of messages
	// recorded, cards, answers to mail.
	owedMu    sync.Mutex
	owed      []wire.Frame
	owedReady chan struct{}

	active    atomic.Int64          // Unix nanoseconds of the last frame, either way
	closedFor atomic.Pointer[error] // why we closed it ourselves (closeFor)
	probed    atomic.Bool           // we dialled the friend back once (reach.go)

	done chan struct{} // closed when run returns; err says why
	err  error
	once sync.Once

	// ending is closed by stop: the connection is closed, or its reader
	// ended. A receive paused by the friend's budget, which reads
	// nothing, waits on it.
	ending   chan struct{}
	stopOnce sync.Once
}

func newConn(n *Node, nc net.Conn, br *bufio.Reader, bw *bufio.Writer) *conn {
	c := &conn{
		node:      n,
		nc:        nc,
		br:        br,
		bw:        bw,
		ackReady:  make(chan struct{}, 1),
		owedReady: make(chan struct{}, 1),
		done:      make(chan struct{}),
		ending:    make(chan struct{}),
	}
	c.touch()
	return c
}

func (c *conn) touch() { c.active.Store(time.Now().UnixNano()) }

// idleFor is how long the connection has carried no frame, either way.
func (c *conn) idleFor() time.Duration {
	return time.Since(time.Unix(0, c.active.Load()))
}

// run reads, records and acknowledges the friend's messages until the
// connection ends, and returns why. Acks for our own messages go to acks.
func (c *conn) run(ctx context.Context) error {
	defer close(c.done)
	defer c.close()
	n := c.node
	in := n.inboxes[c.friend]
	if c.first == nil {
		n.connUp(c)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.writeAcks(stop)
	}()
	// Interfaces (pointers), so that a thousand idle friends cost 16 KB
	// each here.
	msgs := make(chan wire.Frame, maxReceiveBatch)
	var readErr error
	go func() {
		defer wg.Done()
		defer close(msgs)
		defer c.stop()
		readErr = c.read(msgs, stop)
	}()
	err := c.record(ctx, in, msgs)
	close(stop)
	c.nc.Close() // the reader returns
	wg.Wait()
	if err == nil {
		err = readErr
	}
	if why := c.closedFor.Load(); why != nil {
		err = *why // we closed it, and this is why, not "use of closed network connection"
	}
	c.err = err
	return err
}

// maxReceiveBatch bounds the messages recorded in one go from one connection.
const maxReceiveBatch = 1024

// record takes the messages and mail the reader decoded: whatever arrived
// during one commit is taken together into the next. The new messages are
// recorded durably and handed on (inbox.receive), and then all of them,
// duplicates included, are owed an ack; mail goes to takeMail, in the
// order it came. It returns nil when msgs is closed, or the error that
// means nothing more is to be acknowledged.
func (c *conn) record(ctx context.Context, in *inbox, msgs <-chan wire.Frame) error {
	var batch []wire.Message
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		for rest := batch; len(rest) > 0; {
			// All of it, unless the friend's budget pauses it part way.
			k, err := in.receive(ctx, c.ending, rest, "")
			if err != nil {
				return err
			}
			c.owedMu.Lock()
			for _, m := range rest[:k] {
				c.owed = append(c.owed, wire.Ack{Stream: m.Stream, Seq: m.Seq})
			}
			c.owedMu.Unlock()
			signal(c.owedReady)
			rest = rest[k:]
		}
		batch = batch[:0]
		return nil
	}
	for {
		f, ok := <-msgs
		if !ok {
			return nil
		}
	drain:
		for {
			switch f := f.(type) {
			case wire.Message:
				batch = append(batch, f)
			case wire.Mail:
				if err := flush(); err != nil {
					return err
				}
				if err := c.node.takeMail(ctx, c, f); err != nil {
					return err
				}
			}
			if len(batch) >= maxReceiveBatch {
				break
			}
			select {
			case f, ok = <-msgs:
				if !ok {
					break drain // record and ack what came; the next receive sees the end
				}
			default:
				break drain
			}
		}
		if err := flush(); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil // closed while paused: the reader says why
			}
			return err
		}
	}
}

// owe queues frames for the ack writer to write.
func (c *conn) owe(frames ...wire.Frame) {
	c.owedMu.Lock()
	c.owed = append(c.owed, frames...)
	c.owedMu.Unlock()
	signal(c.owedReady)
}

// read decodes frames until the connection ends: messages and mail go to
// msgs, acks to acks, cards, holds and receipts to the node.
func (c *conn) read(msgs chan<- wire.Frame, stop <-chan struct{}) error {
	n := c.node
	buf := make([]byte, wire.MaxFrameSize)
	c.welcomed = c.first == nil
	for {
		if c.silence > 0 {
			c.nc.SetReadDeadline(time.Now().Add(c.silence))
		}
		f, err := wire.ReadFrame(c.br, buf)
		if err != nil {
			return err
		}
		c.touch()
		if !c.welcomed {
			if err := c.first(f); err != nil {
				return err
			}
			c.welcomed = true
			// After the first flight, which carries only the hello and
			// the messages.
			n.connUp(c)
			continue
		}
		switch f := f.(type) {
		case wire.Message, wire.Mail:
			idle := len(msgs) == 0
			select {
			case msgs <- f:
			case <-stop:
				return nil
			}
			if idle && c.br.Buffered() == 0 {
				// A message alone: let it be recorded now, not once
				// this goroutine blocks reading the next. With the
				// hints here, in inbox.receive and in shell/plain.go,
				// BenchmarkWarmLatency's p50 is 1.33-1.44 times the
				// durable relay's; without them, 1.52-1.55.
				runtime.Gosched()
			}
		case wire.Ack:
			if c.acked.Add(1) > c.written.Load() {
				return fmt.Errorf("%w: an ack for a message not sent on this connection", wire.ErrBadFrame)
			}
			c.ackMu.Lock()
			c.acks = append(c.acks, f)
			c.ackMu.Unlock()
			signal(c.ackReady)
		case wire.Ping:
		case wire.Probe:
			n.answerProbe(c, f)
		case wire.Probed:
			n.takeProbed(c, f)
		case wire.Card:
			n.takeCard(n.ctx, c.friend, f)
		case wire.Held:
			n.takeHeld(n.ctx, c, f)
		case wire.Receipt:
			n.takeReceipt(n.ctx, c, f)
		case wire.Refuse:
			return &RefusedError{Reason: f.Reason}
		default:
			return fmt.Errorf("%w: expected a message or an ack, got frame type %d", wire.ErrBadFrame, f.Type())
		}
	}
}

// writeAcks writes the acks owed, as they come, until stop.
func (c *conn) writeAcks(stop <-chan struct{}) {
	for {
		select {
		case <-c.owedReady:
		case <-stop:
			return
		}
		c.owedMu.Lock()
		owed := c.owed
		c.owed = nil
		c.owedMu.Unlock()
		if err := c.writeFrames(owed); err != nil {
			c.nc.Close() // the reader sees it, and run ends
			return
		}
	}
}

// writeFrames writes frames and flushes them, each writeChunk frames under
// a fresh deadline, so that a long backlog to a friend who reads is not cut
// off as a stall.
func (c *conn) writeFrames(frames []wire.Frame) error {
	return c.writeEach(len(frames), func(i int) wire.Frame { return frames[i] })
}

// writeEach is writeFrames of frame(i) for i below count.
func (c *conn) writeEach(count int, frame func(i int) wire.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for i := range count {
		if i%writeChunk == 0 {
			c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		if err := wire.WriteFrame(c.bw, frame(i)); err != nil {
			return err
		}
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	c.touch()
	return nil
}

// write sends batch, each message with its stream's low-water mark from
// lows.
func (c *conn) write(batch []outgoing, lows []uint64) error {
	c.written.Add(int64(len(batch))) // before an ack can come back
	return c.writeEach(len(batch), func(i int) wire.Frame {
		m := batch[i]
		return wire.Message{Stream: m.stream, Seq: m.seq, Low: lows[i], Sent: m.created, Group: m.group, Text: m.text}
	})
}

// takeAcks returns the acks read since the last call.
func (c *conn) takeAcks() []wire.Ack {
	c.ackMu.Lock()
	defer c.ackMu.Unlock()
	a := c.acks
	c.acks = nil
	return a
}

// closeFor closes the connection for a reason of ours, which run then
// returns as the connection's end.
func (c *conn) closeFor(why error) {
	c.closedFor.CompareAndSwap(nil, &why)
	c.close()
}

// close closes the connection; run then returns.
func (c *conn) close() {
	c.once.Do(func() { c.nc.Close() })
	c.stop()
}

// stop ends a receive paused by the friend's budget, for a connection
// closed underneath (its reader ended, or it was closed below its TLS).
func (c *conn) stop() {
	c.stopOnce.Do(func() { close(c.ending) })
}

// closeAndWait closes the connection and waits for run to return.
func (c *conn) closeAndWait() {
	c.close()
	<-c.done
}

// signal wakes whoever waits on ch, without waiting.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
