/** `a, b,,c` → `['a', 'b', 'c']`: the one way a list given as text (a flag, a variable) is read. */
export const commaList = (value: string): string[] => value.split(',').map((s) => s.trim()).filter((s) => s !== '');
