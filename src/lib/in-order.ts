/** The items whose id is in `ids`, in that order (items read by id come back in any order). */
export const inOrder = <T extends { id: string }>(ids: string[], items: T[]): T[] => {
  const byId = new Map(items.map((x) => [x.id, x]));
  return ids.map((id) => byId.get(id)).filter((x): x is T => x !== undefined);
};
