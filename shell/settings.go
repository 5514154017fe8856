package shell

import (
	"fmt"
	"strings"
	"time"
)

// Settings are the choices the person makes with /time and /bell. They
// last across runs: the shell hands every change to Config.SaveSettings.
type Settings struct {
	Time bool // every line starts with the time, HH:MM
	Bell bool // a message that arrives while nothing is typed rings the terminal bell
}

// DefaultSettings are the settings of a first run: no times, the bell on.
func DefaultSettings() Settings { return Settings{Bell: true} }

// setTime is /time on|off.
func (s *Shell) setTime(args []string) bool {
	on, ok := s.onOff("time", args, s.settings.Time)
	if !ok {
		return false
	}
	s.settings.Time = on
	s.saveSettings()
	if on {
		s.ui.notice("Every line now starts with the time.")
	} else {
		s.ui.notice("Lines no longer start with the time.")
	}
	return false
}

// setBell is /bell on|off.
func (s *Shell) setBell(args []string) bool {
	on, ok := s.onOff("bell", args, s.settings.Bell)
	if !ok {
		return false
	}
	s.settings.Bell = on
	s.ui.setBell(on && s.cfg.Terminal)
	s.saveSettings()
	if on {
		s.ui.notice("A message that arrives while you are not typing rings the bell.")
	} else {
		s.ui.notice("Messages no longer ring the bell.")
	}
	return false
}

// onOff reads the argument of /NAME on|off. Alone, /NAME says what the
// setting is, and ok is false.
func (s *Shell) onOff(name string, args []string, now bool) (on, ok bool) {
	switch {
	case len(args) == 1 && args[0] == "on":
		return true, true
	case len(args) == 1 && args[0] == "off":
		return false, true
	case len(args) == 0:
		state := "off"
		if now {
			state = "on"
		}
		s.ui.notice(fmt.Sprintf("/%s is %s; /%s on or /%s off changes it.", name, state, name, name))
	default:
		s.problem(fmt.Sprintf("usage: /%s on, or /%s off", name, name))
	}
	return false, false
}

func (s *Shell) saveSettings() {
	if s.cfg.SaveSettings == nil {
		return
	}
	if err := s.cfg.SaveSettings(s.settings); err != nil {
		s.problem(Sanitize(fmt.Sprintf("the setting holds until you quit, but it is not kept: %v", err)))
	}
}

// stampUI starts every line with the time while *on holds (/time on); a
// line's continuation lines are indented to match.
type stampUI struct {
	ui
	on  *bool
	now func() time.Time
}

// stampWidth is the width of the time before a line, "15:04 ".
const stampWidth = len("15:04 ")

func (u stampUI) stamp(line string) string {
	if !*u.on {
		return line
	}
	indent := "\n" + strings.Repeat(" ", stampWidth)
	return u.now().Format("15:04") + " " + strings.ReplaceAll(line, "\n", indent)
}

func (u stampUI) message(line string) { u.ui.message(u.stamp(line)) }
func (u stampUI) notice(line string)  { u.ui.notice(u.stamp(line)) }
