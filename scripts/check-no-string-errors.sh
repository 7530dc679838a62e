#!/usr/bin/env bash
# Fails when code outside tests returns `Result<_, String>` (or implements `type Err = String`):
# a caller can neither match on a string nor keep its cause. Test code is skipped: tests/
# directories, files under */tests/*, and `#[cfg(test)]` modules (to their closing brace).
#
# Files that still hold such signatures are listed, one path a line, in
# scripts/string-errors.allow; the list only shrinks: a listed file that is now clean is an error
# too, so it is taken off the list with the change that cleans it.
set -euo pipefail
cd "$(dirname "$0")/.."
allow=scripts/string-errors.allow

found=$(git ls-files -- 'crates/*.rs' 'services/*.rs' 'bench/*.rs' | grep -v '/tests/' | xargs perl -ne '
    if ($ARGV ne $file) { $file = $ARGV; $n = 0; $depth = 0; $skip = 0; $pending = 0 }
    $n++;
    # a #[cfg(test)] item: skip from its opening brace to the matching closing one
    if (!$skip && /^\s*#\[cfg\(test\)\]/) { $pending = 1; next }
    if ($pending && /\{/) { $pending = 0; $skip = 1; $depth = 0 }
    if ($skip) {
        $depth += () = /\{/g;
        $depth -= () = /\}/g;
        $skip = 0 if $depth <= 0;
        next;
    }
    $pending = 0 if $pending && /;\s*$/;
    my $line = $_;
    my $hit = 0;
    $hit = 1 if $line =~ /type\s+Err\s*=\s*String\s*;/;
    while ($line =~ /\bResult</g) {
        my $pos = pos($line);
        my ($lvl, $arg, @args) = (1, "");
        for my $c (split //, substr($line, $pos)) {
            if ($c eq "<" || $c eq "(" || $c eq "[") { $lvl++ }
            elsif ($c eq ">" || $c eq ")" || $c eq "]") { $lvl--; if ($lvl == 0) { push @args, $arg; last } }
            elsif ($c eq "," && $lvl == 1) { push @args, $arg; $arg = ""; next }
            $arg .= $c;
        }
        $hit = 1 if @args == 2 && $args[1] =~ /^\s*(std::string::)?String\s*$/;
    }
    print "$ARGV:$n: $_" if $hit;
' || true)

status=0
offending=$(printf '%s\n' "$found" | sed -n 's/^\([^:]*\):.*/\1/p' | sort -u)
listed=$({ grep -vE '^\s*(#|$)' "$allow" || true; } | awk '{print $1}' | sort -u)
new=$(comm -23 <(printf '%s\n' "$offending" | sed '/^$/d') <(printf '%s\n' "$listed" | sed '/^$/d'))
if [ -n "$new" ]; then
    echo "Result<_, String> outside tests (return a typed error: thiserror, mas_kit::error::AppError):"
    printf '%s\n' "$found" | grep -F -f <(printf '%s\n' "$new" | sed 's/$/:/')
    status=1
fi
clean=$(comm -13 <(printf '%s\n' "$offending" | sed '/^$/d') <(printf '%s\n' "$listed" | sed '/^$/d'))
if [ -n "$clean" ]; then
    echo "no longer hold Result<_, String>; take them off $allow:"
    printf '  %s\n' $clean
    status=1
fi
exit $status
