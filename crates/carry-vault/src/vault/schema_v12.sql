-- Carry vault schema, version 12: the administrative category.
--
-- Claims, explanations of benefit, cover and other paperwork about care were held
-- under `other`; they move to `administrative`, which the timeline leaves out unless
-- asked for (done after this file by `record::category::recategorise_administrative`,
-- which a restore of an older backup runs too). No table changes.
SELECT 1;
