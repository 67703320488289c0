// Package docflags checks every cvmanager command line the docs show
// against the real command tree: the subcommands exist and every flag
// written is one the command takes, so a renamed or removed flag cannot
// live on in README.md or docs/*.md.
package docflags

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"cvmanager.dev/cvmanager/pkg/cli"
)

// commandLine is one `cvmanager …` line of a doc.
type commandLine struct {
	doc, line string
}

// inlineCommand is a code span that is a command line.
var inlineCommand = regexp.MustCompile("`(cvmanager [^`]+)`")

// commandLines finds the command lines of a markdown doc: lines of fenced
// code blocks that start with `cvmanager ` (after an optional prompt) and
// inline code spans that do.
func commandLines(doc, text string) []commandLine {
	var out []commandLine
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			trimmed = strings.TrimPrefix(trimmed, "$ ")
			if strings.HasPrefix(trimmed, "cvmanager ") {
				out = append(out, commandLine{doc, trimmed})
			}
			continue
		}
		for _, m := range inlineCommand.FindAllStringSubmatch(line, -1) {
			out = append(out, commandLine{doc, m[1]})
		}
	}
	return out
}

// words splits a command line as far as the check needs: it stops at a
// comment, a pipe, a redirection or a second command, and drops quotes and
// the brackets that mark optional parts.
func words(line string) []string {
	var out []string
	for _, w := range strings.Fields(line) {
		if w == "#" || strings.HasPrefix(w, "#") || w == "|" || w == "&&" || w == "||" || w == ";" || w == "\\" ||
			strings.HasPrefix(w, ">") || strings.HasPrefix(w, "2>") || w == "…" || w == "..." {
			break
		}
		w = strings.Trim(w, `'"[]`)
		w = strings.TrimSuffix(w, ";")
		if w != "" {
			out = append(out, w)
		}
	}
	return out
}

// checkLine returns what is wrong with one command line. A word written
// as alternatives ("apply|delete|list") stands for each of them.
func checkLine(root *cobra.Command, line string) []string {
	ws := words(line)
	for i, w := range ws {
		if alts := strings.Split(strings.ReplaceAll(w, `\|`, "|"), "|"); len(alts) > 1 {
			var problems []string
			for _, a := range alts {
				problems = append(problems, checkLine(root, strings.Join(append(append(append([]string{}, ws[:i]...), a), ws[i+1:]...), " "))...)
			}
			return problems
		}
	}
	return checkWords(root, ws)
}

// checkWords checks one command line without alternatives.
func checkWords(root *cobra.Command, ws []string) []string {
	args := ws[1:] // without "cvmanager"
	var path []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		path = append(path, a)
	}
	cmd, rest, err := root.Find(path)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	if len(rest) > 0 && cmd.HasSubCommands() && !cmd.Runnable() {
		problems = append(problems, "no subcommand "+rest[0]+" under "+cmd.CommandPath())
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			continue
		}
		name, _, _ := strings.Cut(a, "=")
		var f *pflag.Flag
		if strings.HasPrefix(name, "--") {
			f = lookup(cmd, strings.TrimPrefix(name, "--"))
		} else if len(name) == 2 {
			f = shorthand(cmd, name[1:])
		} else {
			continue // a value such as -1, or combined short flags
		}
		if f == nil {
			problems = append(problems, cmd.CommandPath()+" has no flag "+name)
		}
	}
	return problems
}

func lookup(cmd *cobra.Command, name string) *pflag.Flag {
	if f := cmd.Flags().Lookup(name); f != nil {
		return f
	}
	return cmd.InheritedFlags().Lookup(name)
}

func shorthand(cmd *cobra.Command, s string) *pflag.Flag {
	if f := cmd.Flags().ShorthandLookup(s); f != nil {
		return f
	}
	return cmd.InheritedFlags().ShorthandLookup(s)
}

// TestDocCommandLinesMatchTheCLI checks every command line in README.md and
// docs/*.md.
func TestDocCommandLinesMatchTheCLI(t *testing.T) {
	root := filepath.Join("..", "..")
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(root, "README.md"))
	checked := 0
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, cl := range commandLines(filepath.Base(doc), string(data)) {
			checked++
			for _, p := range checkLine(rootFor(cl.line), cl.line) {
				t.Errorf("%s: %q: %s", cl.doc, cl.line, p)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d command lines found in the docs: the parser misses them", checked)
	}
	t.Logf("%d command lines checked", checked)
}

// TestCheckLineCatchesWhatItShould: a made-up flag and a made-up
// subcommand are caught; flags of the parent and shorthands are not.
func TestCheckLineCatchesWhatItShould(t *testing.T) {
	root := cli.NewRootCommand()
	for line, wantProblems := range map[string]bool{
		"cvmanager cr tags add --repo r --tags env-prod --version abc": false,
		"cvmanager cr tags add --repo r --no-such-flag x":              true,
		"cvmanager cr nosuch --repo r":                                 true,
		"cvmanager cv get -n shop -o wide # a comment --bogus":         false,
		"cvmanager policy list|apply|delete -n shop --cv web":          false,
		"cvmanager policy list|nosuch --cv web":                        true,
	} {
		if got := len(checkLine(root, line)) > 0; got != wantProblems {
			t.Errorf("%q: problems %v, want %v (%v)", line, got, wantProblems, checkLine(root, line))
		}
	}
}

// rootFor is the command tree a line runs in: `cvmanager state ...` runs
// the cvmanager-state binary, which carries the state commands (and Helm).
func rootFor(line string) *cobra.Command {
	if ws := words(line); len(ws) > 1 && ws[1] == "state" {
		return cli.NewStateRootCommand(nil)
	}
	return cli.NewRootCommand()
}
