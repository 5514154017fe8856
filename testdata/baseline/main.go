// Command baseline is the yardstick of bench_test.go: the simplest honest
// line relay over raw TCP, with no TLS, no database and no protocol. Every
// figure the benchmarks report for p2pchat is compared with this program
// doing the same job in the same run.
//
// Usage:
//
//	baseline recv ADDR       listen on ADDR; print every line received, as it comes
//	baseline send ADDR       connect to ADDR once; send every line of stdin, as it comes
//	baseline send-each ADDR  connect to ADDR anew for every line of stdin
//
// recv says "listening on ADDR" on stderr once it listens, and send says
// "connected to ADDR" once it has connected: the benchmarks wait for these.
// Lines are read with bufio and written one write per line, with no
// batching, both into the socket and onto stdout.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: baseline recv|send|send-each ADDR")
		os.Exit(2)
	}
	addr := os.Args[2]
	var err error
	switch os.Args[1] {
	case "recv":
		err = recv(addr)
	case "send":
		err = send(addr)
	case "send-each":
		err = sendEach(addr)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

// recv accepts connections for ever and copies each one's lines to stdout.
func recv(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "listening on", ln.Addr())
	var mu sync.Mutex // one line at a time on stdout
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer conn.Close()
			br := bufio.NewReader(conn)
			for {
				line, err := br.ReadBytes('\n')
				if len(line) > 0 {
					mu.Lock()
					os.Stdout.Write(line)
					mu.Unlock()
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// send connects once and writes each line of stdin to the connection.
func send(addr string) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Fprintln(os.Stderr, "connected to", addr)
	return eachLine(func(line []byte) error {
		_, err := conn.Write(line)
		return err
	})
}

// sendEach connects anew for each line of stdin: the yardstick for a first
// message, when no connection is open.
func sendEach(addr string) error {
	fmt.Fprintln(os.Stderr, "ready to connect to", addr)
	return eachLine(func(line []byte) error {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		_, err = conn.Write(line)
		conn.Close()
		return err
	})
}

// eachLine calls f with each line of stdin, '\n' included, as it comes.
func eachLine(f func(line []byte) error) error {
	br := bufio.NewReader(os.Stdin)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if err := f(line); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
