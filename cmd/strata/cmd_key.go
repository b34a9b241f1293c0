package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/repo"
)

func newKeyCommand() *command {
	var newPasswordFile string
	newPW := func(fs *pflag.FlagSet) {
		fs.StringVar(&newPasswordFile, "new-password-file", "", "read the new password from this file (or env STRATA_NEW_PASSWORD; else asked on the terminal)")
	}
	return &command{
		name: "key", short: "manage the passwords (keys) that open the repository",
		long: `Every key file wraps the same master key under its own password, so a
password can be added, changed or removed without re-encrypting anything.`,
		subs: []*command{
			{
				name: "list", args: "", short: "list keys", examples: []string{"strata key list"},
				run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
					if err := exactArgs("key list", args, 0, "no arguments"); err != nil {
						return err
					}
					return g.withRepo(ctx, t, func(r *repo.Repository) error {
						keys, err := r.Keys(ctx)
						if err != nil {
							return err
						}
						if t.json {
							return t.printJSON(keys)
						}
						tw := tabwriter.NewWriter(t.stdout, 0, 2, 2, ' ', 0)
						fmt.Fprintln(tw, " ID\tUser\tHost\tCreated")
						for _, k := range keys {
							cur := " "
							if k.Current {
								cur = "*"
							}
							fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\n", cur, k.ID.Short(), k.Username, k.Hostname, k.Created.Local().Format(time.DateTime))
						}
						return tw.Flush()
					})
				},
			},
			{
				name: "add", args: "[--new-password-file F]", short: "add a key (a new password)", setup: newPW,
				examples: []string{"STRATA_NEW_PASSWORD=... strata key add", "strata key add --new-password-file /etc/strata/second"},
				run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
					if err := exactArgs("key add", args, 0, "no arguments"); err != nil {
						return err
					}
					return g.withRepo(ctx, t, func(r *repo.Repository) error {
						pw, err := g.newPassword(t, newPasswordFile)
						if err != nil {
							return err
						}
						id, err := r.AddKey(ctx, pw)
						if err != nil {
							return err
						}
						if t.json {
							return t.printJSON(map[string]any{"message_type": "key_added", "id": id.String()})
						}
						t.printf("added key %s\n", id.Short())
						return nil
					})
				},
			},
			{
				name: "remove", args: "ID", short: "remove a key (not the one in use)",
				examples: []string{"strata key remove 1a2b3c4d"},
				run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
					if err := exactArgs("key remove", args, 1, "one key ID"); err != nil {
						return err
					}
					return g.withRepo(ctx, t, func(r *repo.Repository) error {
						id, err := r.FindObject(ctx, "keys", args[0])
						if err != nil {
							return err
						}
						if err := r.RemoveKey(ctx, id); err != nil {
							return err
						}
						if t.json {
							return t.printJSON(map[string]any{"message_type": "key_removed", "id": id.String()})
						}
						t.printf("removed key %s\n", id.Short())
						return nil
					})
				},
			},
			{
				name: "passwd", args: "[--new-password-file F]", short: "change the password of the key in use", setup: newPW,
				examples: []string{"STRATA_NEW_PASSWORD=... strata key passwd"},
				run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
					if err := exactArgs("key passwd", args, 0, "no arguments"); err != nil {
						return err
					}
					return g.withRepo(ctx, t, func(r *repo.Repository) error {
						pw, err := g.newPassword(t, newPasswordFile)
						if err != nil {
							return err
						}
						id, err := r.ChangePassword(ctx, pw)
						if err != nil {
							return err
						}
						if t.json {
							return t.printJSON(map[string]any{"message_type": "password_changed", "id": id.String()})
						}
						t.printf("password changed: new key %s\n", id.Short())
						return nil
					})
				},
			},
		},
	}
}
