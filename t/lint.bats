# t/lint.bats — static analysis stays clean: tools/lint (cppcheck and
# clang-tidy with .clang-tidy) over lib/ and stages/, as `make lint` runs it.
load lib/root

lint_tools() {
	command -v cppcheck >/dev/null && command -v clang-tidy >/dev/null ||
		skip "cppcheck or clang-tidy not installed (make deps)"
}

@test "lib and stages pass cppcheck and clang-tidy" {
	lint_tools
	run "$TOP/tools/lint"
	assert_success
	assert_output --partial 'lint: clean'
}

@test "lint fails on a real defect and names file, line and check" {
	lint_tools
	local tree="$BATS_TEST_TMPDIR/tree"
	mkdir -p "$tree/tools" "$tree/lib" "$tree/stages"
	cp "$TOP/tools/lint" "$tree/tools/"
	cp "$TOP/.clang-tidy" "$tree/"
	cp "$TOP"/lib/*.h "$tree/lib/"
	cat > "$tree/stages/bad.c" <<'C'
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
	char small[4];
	char *p = malloc(16);

	free(p);
	strcpy(p, argv[0]);	/* use after free */
	small[argc + 4] = 0;
	return small[0];
}
C
	run "$tree/tools/lint"
	assert_failure 1
	assert_output --regexp 'stages/bad\.c:[0-9]+:.*\[(clang-analyzer|[a-zA-Z]+)'
	assert_output --partial 'stages/bad.c:11'
}
