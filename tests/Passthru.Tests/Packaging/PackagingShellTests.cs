namespace Passthru.Tests.Packaging;

/// <summary>The completion scripts the package ships, checked and loaded by their own shells.</summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("Packaging")]
public class PackagingShellTests(PackagingFixture package)
{
    private string Bash => package.File("usr/share/bash-completion/completions/passthru");

    [Theory]
    [InlineData("bash", "usr/share/bash-completion/completions/passthru")]
    [InlineData("zsh", "usr/share/zsh/vendor-completions/_passthru")]
    [InlineData("fish", "usr/share/fish/vendor_completions.d/passthru.fish")]
    public void Each_shell_parses_its_script(string shell, string path)
    {
        var (code, stdout, stderr) = PackagingFixture.Run(shell, ["-n", package.File(path)]);
        Assert.True(code == 0, $"{shell} -n {path}: exit {code}\n{stdout}{stderr}");
        Assert.Equal("", stderr);
    }

    /// <summary>What bash completes: the function `complete -p passthru` names, called as bash calls it.</summary>
    private string[] BashCompletes(params string[] words)
    {
        var script = $$"""
            . '{{Bash}}' || exit 1
            function=$(complete -p passthru | sed -nE 's/.*-F ([^ ]+) .*/\1/p')
            [ -n "$function" ] || { echo "no completion function for passthru" >&2; exit 1; }
            COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
            COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
            "$function" passthru "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\n' "${COMPREPLY[@]}"
            """;
        var (code, stdout, stderr) = PackagingFixture.Run("bash", ["--norc", "--noprofile", "-c", script, "bash", .. words]);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal("", stderr);
        return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    [Fact]
    public void Bash_completes_a_command()
    {
        Assert.Equal(["bind"], BashCompletes("passthru", "bi"));
        Assert.Equal(["restore", "rom", "run"], BashCompletes("passthru", "r").Order());
        Assert.Equal(["cloud-hypervisor", "kubevirt", "libvirt", "nova", "proxmox"], BashCompletes("passthru", "--root", "/", "export", "").Order());   // a global option's value is skipped
    }

    [Fact]
    public void Bash_completes_options_with_their_aliases_and_fixed_values()
    {
        Assert.Equal(["--dry-run"], BashCompletes("passthru", "bind", "--dr"));
        // Whole words, all of them: restore's own options with -v's alias, then the global ones (they follow every command).
        Assert.Equal(["--all", "--dry-run", "--help", "--pci-ids", "--root", "--state-dir", "--verbose", "-h", "-v"],
            BashCompletes("passthru", "restore", "-").Order(StringComparer.Ordinal));
        Assert.Equal(["auto", "kvm", "tcg"], BashCompletes("passthru", "run", "--accel", "").Order());
        Assert.Equal(["grub", "grubby"], BashCompletes("passthru", "setup", "--boot-loader", "grub").Order());
        Assert.Equal(["bash", "fish", "zsh"], BashCompletes("passthru", "completion", "").Order());
        Assert.Equal(["--output"], BashCompletes("passthru", "export", "libvirt", "--ou"));
        Assert.Equal(["--image", "--image-out"], BashCompletes("passthru", "export", "kubevirt", "--ima"));
        Assert.Equal(["--flavor"], BashCompletes("passthru", "export", "nova", "--fl"));
    }

    [Fact]
    public void Bash_completes_a_value_after_an_equals_sign()
    {
        // What bash hands over for `passthru run --accel=` and `passthru --root=/ export l`: = is a word of its own.
        Assert.Equal(["auto", "kvm", "tcg"], BashCompletes("passthru", "run", "--accel", "=").Order());
        Assert.Equal(["kvm"], BashCompletes("passthru", "run", "--accel", "=", "k"));
        Assert.Equal(["libvirt"], BashCompletes("passthru", "--root", "=", "/", "export", "l"));
    }

    [Fact]
    public void Zsh_compinit_takes_the_script_for_passthru()
    {
        // compinit reads the #compdef line of each file on fpath: the script must register itself for passthru.
        var dir = Path.GetDirectoryName(package.File("usr/share/zsh/vendor-completions/_passthru"))!;
        var (code, stdout, stderr) = PackagingFixture.Run("zsh", ["-f", "-c",
            $"fpath=('{dir}' $fpath); autoload -Uz compinit && compinit -u -D && print -r -- $_comps[passthru]"]);
        Assert.True(code == 0, stderr);
        Assert.Equal("_passthru", stdout.Trim());
    }

    /// <summary>
    /// The arguments passthru gets when <paramref name="typed"/> (tabs for TAB) is typed into an interactive zsh with
    /// the script on fpath: zsh completes only inside its line editor, so it runs on a pseudo-terminal (zpty), and
    /// passthru there is a function that prints its arguments.
    /// </summary>
    private string ZshTyped(string typed)
    {
        var dir = Path.GetDirectoryName(package.File("usr/share/zsh/vendor-completions/_passthru"))!;
        var script = Path.Combine(package.Tree, "type.zsh");
        File.WriteAllText(script, $$"""
            zmodload zsh/zpty
            zpty z 'zsh -f -i'
            zpty -w z "PROMPT='> '; fpath=('{{dir}}' \$fpath); autoload -Uz compinit; compinit -u -D; bindkey '^I' complete-word"
            zpty -w z 'passthru() { print -r -- "AR""GS<$*>" }'   # split, so that the echoed line does not match
            zpty -w z "$1"
            zpty -r z out '*ARGS<*>*'
            print -r -- "${${out##*ARGS<}%%>*}"
            zpty -d z
            """);
        var (code, stdout, stderr) = PackagingFixture.Run("timeout", ["60", "zsh", "-f", script, typed]);
        Assert.True(code == 0, $"exit {code}: {stdout}{stderr}");
        return stdout.Trim();
    }

    [Fact]
    public void Zsh_completes_commands_options_and_values()
    {
        Assert.Equal("bind --dry-run", ZshTyped("passthru bi\t--dr\t"));
        Assert.Equal("run --accel kvm", ZshTyped("passthru run --accel k\t"));
        Assert.Equal("--root / export libvirt", ZshTyped("passthru --root / export li\t"));
    }

    [Fact]
    public void Fish_completes_a_command_and_an_options_values()
    {
        string[] Complete(string line)
        {
            var (code, stdout, stderr) = PackagingFixture.Run("fish", ["--no-config", "-c",
                $"source '{package.File("usr/share/fish/vendor_completions.d/passthru.fish")}'; complete -C '{line}'"]);
            Assert.True(code == 0, stderr);
            return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')[0]).ToArray();
        }
        Assert.Equal(["bind"], Complete("passthru bi"));
        Assert.Equal(["auto", "kvm", "tcg"], Complete("passthru run --accel ").Order());
    }
}
