// Module properties are tagged data, as in nixpkgs' lib/modules.nix: they wrap a
// definition and are interpreted when the option that receives it is merged.

/** Priorities, lower wins. The numbers are NixOS's. */
export const priorities = {
  optionDefault: 1500,
  default: 1000,
  plain: 100,
  force: 50,
} as const;

/** Orders for list definitions, lower comes first. */
export const orders = { before: 500, default: 1000, after: 1500 } as const;

export interface If<T> {
  readonly _type: "if";
  readonly condition: boolean;
  readonly content: T;
}
export interface Merge<T> {
  readonly _type: "merge";
  readonly contents: readonly T[];
}
export interface Override<T> {
  readonly _type: "override";
  readonly priority: number;
  readonly content: T;
}
export interface Order<T> {
  readonly _type: "order";
  readonly priority: number;
  readonly content: T;
}

/** A definition as a user may write it: the value itself or the value wrapped in properties. */
export type Wrapped<T> = T | If<Wrapped<T>> | Merge<Wrapped<T>> | Override<Wrapped<T>> | Order<Wrapped<T>>;

export type Property = If<unknown> | Merge<unknown> | Override<unknown> | Order<unknown>;

export function mkIf<T>(condition: boolean, content: T): If<T> {
  return { _type: "if", condition, content };
}

export function mkMerge<T>(contents: readonly T[]): Merge<T> {
  return { _type: "merge", contents };
}

export function mkOverride<T>(priority: number, content: T): Override<T> {
  return { _type: "override", priority, content };
}

export function mkOptionDefault<T>(content: T): Override<T> {
  return mkOverride(priorities.optionDefault, content);
}

export function mkDefault<T>(content: T): Override<T> {
  return mkOverride(priorities.default, content);
}

export function mkForce<T>(content: T): Override<T> {
  return mkOverride(priorities.force, content);
}

export function mkOrder<T>(priority: number, content: T): Order<T> {
  return { _type: "order", priority, content };
}

export function mkBefore<T>(content: T): Order<T> {
  return mkOrder(orders.before, content);
}

export function mkAfter<T>(content: T): Order<T> {
  return mkOrder(orders.after, content);
}

export function propertyOf(value: unknown): Property | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const tag = (value as { _type?: unknown })._type;
  return tag === "if" || tag === "merge" || tag === "override" || tag === "order"
    ? (value as Property)
    : undefined;
}
