// Command p2pchat is a peer-to-peer chat for a small group of friends.
//
// Usage:
//
//	p2pchat [flags] NAME
//
// NAME must be in the table of friends; the instance listens on that row's
// address. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"

	"p2pchat/network"
	"p2pchat/shell"
)

const version = "0.2.0"

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // could not run: port in use, data dir unusable
	exitUsage = 2 // bad command line or table
)

// maxLogSize is the size past which the log is rotated.
const maxLogSize = 10 << 20

func main() {
	// Every file p2pchat creates is the user's alone, including the ones
	// readline writes behind our back (it rewrites its history file 0666).
	syscall.Umask(0o077)
	// On a terminal, a parent watches over the chat to give the terminal
	// back as it was, however the chat ends (see supervise).
	if os.Getenv(supervisedEnv) == "" && term.IsTerminal(int(os.Stdin.Fd())) {
		if code, ok := supervise(os.Args[1:]); ok {
			os.Exit(code)
		}
	}
	panicOnUSR1()
	os.Exit(run(os.Args[1:]))
}

// panicOnUSR1 is for the tests alone: with P2PCHAT_TEST_PANIC=1 in the
// environment, SIGUSR1 makes a goroutine panic, as a bug in readline's own
// goroutine would, so that a test can check what the terminal is left in.
func panicOnUSR1() {
	if os.Getenv("P2PCHAT_TEST_PANIC") != "1" {
		return
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		<-usr1
		panic("P2PCHAT_TEST_PANIC: panic on SIGUSR1")
	}()
}

func run(args []string) (code int) {
	// P2PCHAT_CPUPROFILE=FILE writes a CPU profile of the whole run, for
	// the performance work (see README, Performance).
	if path := os.Getenv("P2PCHAT_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	fs := flag.NewFlagSet("p2pchat", flag.ContinueOnError)
	peersFile := fs.String("peers", "", "read the table of friends from `FILE` (default: built-in user_1..user_3 on 127.0.0.1:50000..50002)")
	idle := fs.Duration("idle-timeout", network.DefaultIdleTimeout, "close a client connection after `D` without activity")
	ackTimeout := fs.Duration("ack-timeout", network.AckTimeout, "take a connection for dead when a message waits `D` for its acknowledgement, and send again")
	dataDir := fs.String("data-dir", "", "keep this user's own files in `DIR` (default $XDG_STATE_HOME/p2pchat/NAME, else ~/.local/state/p2pchat/NAME)")
	noColor := fs.Bool("no-color", false, "plain output; NO_COLOR in the environment does the same")
	showVersion := fs.Bool("version", false, "print the version and exit")
	showID := fs.Bool("id", false, "print NAME's identity (creating it if needed) and exit")
	check := fs.Bool("check", false, "check NAME's message database with SQLite's integrity check and exit")
	noCarry := fs.Bool("no-carry", false, "do not carry sealed mail for friends who cannot reach each other (yours is still carried by those who do)")
	exitWhenDone := fs.Bool("exit-when-done", false, "at the end of piped input, wait until everything sent is delivered (at most 10s), then exit: 0 if nothing waits, 1 otherwise")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: p2pchat [flags] NAME\n\nflags:\n")
		fs.PrintDefaults()
	}
	// Flags may come before or after NAME.
	if err := fs.Parse(args); err != nil {
		return usageStatus(err)
	}
	var name string
	if fs.NArg() > 0 {
		name = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return usageStatus(err)
		}
	}
	if *showVersion {
		fmt.Println("p2pchat", version)
		return exitOK
	}
	if name == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "p2pchat: want exactly one NAME")
		fs.Usage()
		return exitUsage
	}

	if err := network.CheckName(name); err != nil {
		fmt.Fprintln(os.Stderr, "p2pchat:", err)
		return exitUsage
	}
	if *check && !*showID {
		return checkStore(*dataDir, name)
	}

	// NAME must be in the table, for --id too: an identity made for a
	// name nobody has is a typo's.
	table := network.DefaultTable()
	if *peersFile != "" {
		t, err := network.LoadTable(*peersFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pchat:", err)
			return exitUsage
		}
		table = t
	}
	if _, ok := table.Lookup(name); !ok {
		fmt.Fprintf(os.Stderr, "p2pchat: %q is not in the table of friends; it has %s\n", name, strings.Join(table.Names(), ", "))
		return exitUsage
	}
	if *showID {
		dir, err := openDataDir(*dataDir, name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pchat:", err)
			return exitError
		}
		created := !network.HasIdentity(dir)
		id, err := network.LoadIdentity(dir, name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pchat:", err)
			return exitError
		}
		// The database belongs with the identity: created with it, so
		// that one missing later is known to be lost (and not made
		// anew here, where nobody would hear that it was).
		if created {
			if db, err := network.OpenStore(dir); err == nil {
				db.Close()
			} else if !errors.Is(err, network.ErrLocked) {
				fmt.Fprintln(os.Stderr, "p2pchat:", err)
				return exitError
			}
		}
		fmt.Println(id.ID)
		return exitOK
	}

	if *idle <= 0 || *ackTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "p2pchat: --idle-timeout and --ack-timeout must be positive")
		return exitUsage
	}

	dir, err := openDataDir(*dataDir, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pchat:", err)
		return exitError
	}
	// The database first: its lock keeps a second instance off this
	// directory before it touches anything else.
	hadIdentity := network.HasIdentity(dir)
	db, err := network.OpenStore(dir)
	switch {
	case errors.Is(err, network.ErrLocked):
		fmt.Fprintf(os.Stderr, "p2pchat: %s is in use by another p2pchat (is %s already running?)\n", dir, name)
		return exitError
	case errors.Is(err, network.ErrNoSpace):
		fmt.Fprintf(os.Stderr, "p2pchat: %v; free some space and start again\n", err)
		return exitError
	case errors.Is(err, network.ErrDamaged):
		fmt.Fprintf(os.Stderr, "p2pchat: %v; refusing to start rather than lose queued messages (p2pchat --check %s tells more; move the file aside to start afresh)\n", err, name)
		return exitError
	case err != nil:
		fmt.Fprintf(os.Stderr, "p2pchat: %v\n", err)
		return exitError
	}
	defer func() {
		if err := db.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "p2pchat:", err)
			code = exitError
		}
	}()
	if db.Fresh() && hadIdentity {
		fmt.Fprintf(os.Stderr, "p2pchat: no message database in %s; starting a new one: messages queued before are gone\n", dir)
	}
	if n := db.Upgraded(); n > 0 {
		fmt.Fprintf(os.Stderr, "p2pchat: moved %d messages from p2pchat 0.1's store into %s; the old files are in %s\n", n, db.Path(), filepath.Join(dir, "old-store"))
	}
	logFile, err := openLog(filepath.Join(dir, "p2pchat.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pchat:", err)
		return exitError
	}
	defer logFile.Close()
	logger := slog.New(slog.NewTextHandler(logFile, nil)).With("self", name)
	identity, err := network.LoadIdentity(dir, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pchat:", err)
		return exitError
	}
	known, err := network.LoadKnownPeers(filepath.Join(dir, "known_peers"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pchat: cannot read the identities pinned on first use:", err)
		return exitError
	}

	// SIGHUP too: a closed terminal (or a supervising parent that died,
	// see childAttr) ends the chat as cleanly as SIGTERM.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	node, err := network.Start(ctx, network.Config{
		Name:        name,
		Table:       table,
		IdleTimeout: *idle,
		AckTimeout:  *ackTimeout,
		Identity:    identity,
		Store:       db,
		KnownPeers:  known,
		Logger:      logger,
		NoCarry:     *noCarry,
	})
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(os.Stderr, "p2pchat: %v (is p2pchat %s already running?)\n", err, name)
		} else {
			fmt.Fprintln(os.Stderr, "p2pchat:", err)
		}
		return exitError
	}
	defer node.Close()

	friends := node.Friends()
	terminal := shell.IsTerminal()
	settings, err := loadSettings(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "p2pchat: %v; using the defaults (/time off, /bell on)\n", err)
	}
	sh, err := shell.New(shell.Config{
		Name:         name,
		Friends:      friends,
		Groups:       node.Groups(),
		Net:          node,
		Terminal:     terminal,
		In:           os.Stdin,
		Out:          os.Stdout,
		Err:          os.Stderr,
		HistoryFile:  filepath.Join(dir, "history"),
		Color:        terminal && !*noColor && os.Getenv("NO_COLOR") == "",
		ExitWhenDone: *exitWhenDone,
		Greeting:     greeting(name, node.Addr().String(), friends, node.Groups(), terminal),
		Settings:     settings,
		SaveSettings: func(s shell.Settings) error { return saveSettings(dir, s) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pchat:", err)
		return exitError
	}
	if err := sh.Run(ctx); errors.Is(err, shell.ErrUndelivered) {
		return exitError // the shell said what waits
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "p2pchat:", err)
		return exitError
	}
	node.Close()
	if err := db.LastErr(); err != nil {
		fmt.Fprintf(os.Stderr, "p2pchat: the last write to the message database failed: %v\n", err)
		return exitError
	}
	return exitOK
}

// greeting is the first thing the shell says: who you are, where you
// listen, your friends and groups and how to write to them. On a terminal
// it takes a line for each; for scripts, one line.
func greeting(name, addr string, friends []string, groups []network.Group, terminal bool) string {
	lines := []string{fmt.Sprintf("p2pchat %s: %s, listening on %s.", version, name, addr)}
	if len(friends) == 0 {
		lines = append(lines, "No friends in the table yet; /help for help.")
	} else {
		lines = append(lines, fmt.Sprintf("Your friends: %s. Write %s/hello to send %s a message; /help for help.", strings.Join(friends, ", "), friends[0], friends[0]))
	}
	names := []string{"@" + network.AllGroup}
	for _, g := range groups {
		if slices.Contains(g.Members, name) { // the others' refuse what we write
			names = append(names, "@"+g.Name)
		}
	}
	if len(names) > 1 {
		lines = append(lines, fmt.Sprintf("Your groups: %s. Write %s/hello to send it to each member.", strings.Join(names, ", "), names[1]))
	}
	if terminal {
		return strings.Join(lines, "\n")
	}
	return strings.Join(lines, " ")
}

// checkStore runs SQLite's integrity check on NAME's message database.
func checkStore(dataDir, name string) int {
	dir, err := openDataDir(dataDir, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pchat:", err)
		return exitError
	}
	found, err := network.CheckStore(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pchat:", err)
		return exitError
	}
	if found != "ok" {
		fmt.Printf("%s is damaged; SQLite's integrity check found:\n%s\n", filepath.Join(dir, network.StoreFileName), found)
		return exitError
	}
	fmt.Printf("%s: ok\n", filepath.Join(dir, network.StoreFileName))
	return exitOK
}

func usageStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// openDataDir creates the data directory, owner-only, and returns its path.
func openDataDir(dir, name string) (string, error) {
	if dir == "" {
		base := os.Getenv("XDG_STATE_HOME")
		if !filepath.IsAbs(base) { // the XDG spec says to ignore a relative path
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("no --data-dir given and no home directory: %w", err)
			}
			base = filepath.Join(home, ".local", "state")
		}
		dir = filepath.Join(base, "p2pchat", name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("cannot create the data directory: %w", err)
	}
	// Someone else who can write here could plant links to files of ours.
	st, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("cannot use the data directory: %w", err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return "", fmt.Errorf("the data directory %s belongs to another user: refusing to use it", dir)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("the data directory %s is writable by others (mode %v): refusing to use it; make it yours alone (chmod 700) if that is safe", dir, st.Mode().Perm())
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("cannot protect the data directory: %w", err)
	}
	return dir, nil
}

// openLog opens the log for appending, owner-only. It is rotated when it
// grows past maxLogSize, at start and while running: the old one is kept
// as PATH.old, one generation, so that a flood of log lines costs at most
// twice maxLogSize on disk.
func openLog(path string) (io.WriteCloser, error) {
	l := &rotatingLog{path: path}
	if st, err := os.Lstat(path); err == nil && st.Size() > maxLogSize {
		if err := os.Rename(path, path+".old"); err != nil {
			return nil, fmt.Errorf("cannot rotate the log: %w", err)
		}
	}
	if err := l.open(); err != nil {
		return nil, err
	}
	fmt.Fprintf(l.f, "time=%s msg=\"p2pchat %s starting\"\n", time.Now().Format(time.RFC3339), version)
	return l, nil
}

// rotatingLog is the log file, rotated past maxLogSize.
type rotatingLog struct {
	path string
	mu   sync.Mutex
	f    *os.File
	size int64
}

func (l *rotatingLog) open() error {
	// Never through a link someone planted.
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open the log: %w", err)
	}
	st, err := f.Stat()
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("cannot protect the log: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Write appends p, one log line, rotating first if the file is full. A
// log that cannot be rotated goes on growing rather than losing lines.
func (l *rotatingLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size+int64(len(p)) > maxLogSize && os.Rename(l.path, l.path+".old") == nil {
		l.f.Close()
		if err := l.open(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

func (l *rotatingLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
