// Package resource implements the three commands of the Concourse resource: check.go and in.go
// read top to bottom (decode the request, ask the registry, write files), and out.go shows the
// whole put as a pipeline of steps, each in its own file: the request (out.go), the image to push
// (ready.go for a ready-made image; for a build, plan.go with inputs.go, bases.go and
// cacheimage.go, then build.go with secrets.go and cachemounts.go; platforms.go for an index of
// several platforms), the push (push.go) and the response. run.go is the process around a
// command: stdin, stdout, the redacted log.
package resource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/imagesmith/buildah-image-resource/pkg/access"
	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/redact"
	"github.com/imagesmith/buildah-image-resource/pkg/registry"
)

// Env is what a command gets from its process.
type Env struct {
	Args   []string // argv; Args[1] is the work directory for in and out
	Stdin  io.Reader
	Stderr io.Writer // the public build log: Log, the libraries' logs and build output
	Log    *logrus.Logger
	Getenv func(string) string
	// Redactor masks secrets in everything written to Stderr; nil masks nothing.
	Redactor *redact.Writer
	// Registries is the source's registry-access policy, made once by the command after it has
	// decoded the source: every registry client and the build ask it.
	Registries *access.Policy
}

// connect does what check, in and out do once the request is decoded: debug lines as the
// source asks, the request's notes, the source's registry-access policy (into e.Registries; a
// token it gets is hidden in the log) and a client of the source's repository that hides every
// credential it sends.
func (e *Env) connect(ctx context.Context, src api.Source, notes []string, opts ...registry.Option) (*registry.Client, error) {
	debug(e.Log, src.Debug)
	for _, note := range notes {
		e.Log.Info(note)
	}
	policy, err := access.New(ctx, src, access.Options{Hide: func(secrets ...string) { e.hide(secrets) }})
	if err != nil {
		return nil, err
	}
	e.Registries = policy
	return registry.New(ctx, policy, src.Repository, e.Log, append([]registry.Option{e.hideSent()}, opts...)...)
}

// hide masks secrets in every line printed from now on.
func (e Env) hide(secrets []string) {
	if e.Redactor != nil {
		e.Redactor.Add(secrets...)
	}
}

// hideSent has a registry client hide every credential it sends, tokens included.
func (e Env) hideSent() registry.Option {
	return registry.HideWith(func(secrets ...string) { e.hide(secrets) })
}

// Dir is the work directory Concourse passes as the first argument.
func (e Env) Dir() (string, error) {
	if len(e.Args) < 2 || e.Args[1] == "" {
		return "", fmt.Errorf("usage: %s <directory>: the work directory argument is missing", e.Args[0])
	}
	info, err := os.Stat(e.Args[1])
	if err != nil || !info.IsDir() {
		return "", fmt.Errorf("work directory %s: not a directory", e.Args[1])
	}
	return e.Args[1], nil
}

// Command is check, in or out: it returns the response to print on stdout.
type Command func(ctx context.Context, env Env) (any, error)

// Main runs cmd as a process: the request on stdin, the response as JSON on stdout, logs and a
// one-line error on stderr, every line of it through a redactor the command gives the source's
// secrets to. It returns the exit code.
func Main(cmd Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	stderr := redact.New(os.Stderr)
	defer stderr.Close() // the last unfinished line
	log := NewLogger(stderr)
	// Libraries (buildah, containers/*) log through logrus's standard logger: the process's one,
	// so it is set up here, once: our format, warnings and errors only unless debugging.
	logrus.SetOutput(stderr)
	logrus.SetFormatter(lineFormatter{})
	logrus.SetLevel(logrus.WarnLevel)
	env := Env{Args: os.Args, Stdin: os.Stdin, Stderr: stderr, Log: log, Getenv: os.Getenv, Redactor: stderr}
	response, err := cmd(ctx, env)
	if err != nil {
		log.Error(oneLine(err.Error()))
		return 1
	}
	var out bytes.Buffer
	if err := json.NewEncoder(&out).Encode(response); err != nil {
		log.Errorf("encode response: %v", err)
		return 1
	}
	if _, err := os.Stdout.Write(out.Bytes()); err != nil {
		log.Errorf("write response: %v", err)
		return 1
	}
	return 0
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// NewLogger logs plain lines to w: info as is, warnings and errors with a prefix, debug when enabled.
func NewLogger(w io.Writer) *logrus.Logger {
	return &logrus.Logger{Out: w, Formatter: lineFormatter{}, Hooks: logrus.LevelHooks{}, Level: logrus.InfoLevel, ExitFunc: os.Exit}
}

type lineFormatter struct{}

func (lineFormatter) Format(e *logrus.Entry) ([]byte, error) {
	prefix := map[logrus.Level]string{
		logrus.DebugLevel: "debug: ", logrus.WarnLevel: "WARNING: ", logrus.ErrorLevel: "ERROR: ",
		logrus.FatalLevel: "ERROR: ", logrus.PanicLevel: "ERROR: ", logrus.TraceLevel: "trace: ",
	}[e.Level]
	return []byte(prefix + e.Message + "\n"), nil
}

// debug turns on debug lines, ours and the libraries', when the source asks for them.
func debug(log *logrus.Logger, on bool) {
	if on {
		log.SetLevel(logrus.DebugLevel)
		logrus.SetLevel(logrus.DebugLevel)
	}
}
